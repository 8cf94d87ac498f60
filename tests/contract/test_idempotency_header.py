"""The contracts declare the Idempotency-Key header wherever the gateway reads it, so generated clients
send it: required where a request without one is refused (428), optional where it is only honoured."""

from __future__ import annotations

import json
from typing import Any

from apis.config import Settings
from apis.contracts_cli import CONTRACTS_DIR
from apis.gateway import build_gateway
from apis.routing import IDEMPOTENCY_KEY_PATTERN


def _key_parameter(operation: dict[str, Any]) -> dict[str, Any] | None:
    found = [p for p in operation.get("parameters", []) if p["name"].lower() == "idempotency-key"]
    assert len(found) <= 1
    return found[0] if found else None


def _policies(settings: Settings) -> dict[tuple[str, str], str | None]:
    """``{(METHOD, path): idempotency policy}`` for every documented operation of every tier."""
    gateway = build_gateway(settings)
    policies: dict[tuple[str, str], str | None] = {}
    for mount in gateway.mounts:
        if mount.strip_prefix:
            continue
        for route in mount.app.routes:
            for handler in getattr(route, "route_handlers", []):
                if not handler.resolve_include_in_schema():
                    continue
                for method in handler.http_methods:
                    policies[(method, route.path_format)] = handler.opt.get("idempotency")
    return policies


def test_every_idempotent_operation_declares_the_header(settings: Settings) -> None:
    policies = _policies(settings)
    assert "required" in policies.values()
    assert "optional" in policies.values()
    documents = [json.loads(p.read_text()) for p in sorted(CONTRACTS_DIR.glob("*.json"))]
    seen = 0
    for document in documents:
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                policy = policies[(method.upper(), path)]
                parameter = _key_parameter(operation)
                where = f"{method.upper()} {path}"
                if policy is None:
                    assert parameter is None, where
                    continue
                seen += 1
                assert parameter is not None, f"{where}: Idempotency-Key not declared"
                assert parameter["in"] == "header"
                assert parameter["required"] is (policy == "required"), where
                assert parameter["schema"]["maxLength"] == 255
    assert seen == sum(1 for p in policies.values() if p is not None)


def test_the_declared_key_format_is_the_one_the_gateway_enforces() -> None:
    from apis.middleware import _KEY_RE

    assert _KEY_RE.pattern == IDEMPOTENCY_KEY_PATTERN
