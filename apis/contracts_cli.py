"""Generating and checking the committed OpenAPI documents (``contracts/openapi/{tier}-v1.json``).

The documents are generated from the tier apps themselves, so code and contract have one source. ``check``
fails when the committed file differs from what the code generates, and when the code breaks the published
contract: an operation removed, a response field removed, a property's type changed, or a new required
input (parameter or body field).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from apis.config import load_settings

__all__ = ["breaking_changes", "check_contracts", "export_contracts", "generate_contracts"]

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts" / "openapi"


def generate_contracts() -> dict[str, dict[str, Any]]:
    """``{"system-v1": {...}, ...}``, from the apps as the gateway builds them (with throwaway state)."""
    from apis.gateway import build_gateway

    with tempfile.TemporaryDirectory() as data_dir:
        # Contracts must not depend on the machine: fixed issuer, fresh data dir, no Redis.
        settings = load_settings({}, data_dir=data_dir, public_url="http://127.0.0.1:8000")
        gateway = build_gateway(settings)
        documents: dict[str, dict[str, Any]] = {}
        for mount in gateway.mounts:
            if mount.strip_prefix:  # a vendor sandbox, not one of our contracts
                continue
            name = mount.prefix.strip("/")
            documents[f"{name}-v1"] = mount.app.openapi_schema.to_schema()
    return dict(sorted(documents.items()))


def _dump(document: dict[str, Any]) -> str:
    # Decimal defaults (e.g. a quantity of 1) are written as the strings they travel as.
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def export_contracts(directory: Path = CONTRACTS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in generate_contracts().items():
        path = directory / f"{name}.json"
        path.write_text(_dump(document))
        written.append(path)
    return written


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        resolved: dict[str, Any] = (
            document.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
        )
        return resolved
    return schema


def _types(schema: dict[str, Any]) -> set[str]:
    if "type" in schema:
        value = schema["type"]
        return set(value) if isinstance(value, list) else {value}
    return {t for s in schema.get("oneOf", []) + schema.get("anyOf", []) for t in _types(s)} or {"any"}


def _compare_schema(
    old_doc: dict[str, Any],
    new_doc: dict[str, Any],
    old: dict[str, Any],
    new: dict[str, Any],
    where: str,
    problems: list[str],
    *,
    is_input: bool,
    depth: int = 0,
) -> None:
    if depth > 12:
        return
    old, new = _resolve(old_doc, old), _resolve(new_doc, new)
    old_types, new_types = _types(old), _types(new)
    if "any" not in old_types and not old_types <= new_types and not (is_input and new_types >= old_types):
        problems.append(f"{where}: type changed from {sorted(old_types)} to {sorted(new_types)}")
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, old_prop in old_props.items():
        if name not in new_props:
            if not is_input:
                problems.append(f"{where}.{name}: field removed")
            continue
        _compare_schema(
            old_doc,
            new_doc,
            old_prop,
            new_props[name],
            f"{where}.{name}",
            problems,
            is_input=is_input,
            depth=depth + 1,
        )
    if is_input:
        added_required = set(new.get("required", [])) - set(old.get("required", []))
        for name in sorted(added_required):
            problems.append(f"{where}.{name}: new required input")


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What a client of ``old`` would find broken in ``new``."""
    problems: list[str] = []
    for path, old_item in old.get("paths", {}).items():
        new_item = new.get("paths", {}).get(path)
        for method, old_op in old_item.items():
            if not isinstance(old_op, dict) or "responses" not in old_op:
                continue
            where = f"{method.upper()} {path}"
            new_op = (new_item or {}).get(method)
            if new_op is None:
                problems.append(f"{where}: operation removed")
                continue
            old_params = {(p["name"], p["in"]): p for p in old_op.get("parameters", [])}
            for param in new_op.get("parameters", []):
                key = (param["name"], param["in"])
                if param.get("required") and (key not in old_params or not old_params[key].get("required")):
                    problems.append(f"{where}: new required {param['in']} parameter {param['name']}")
            old_body = (
                old_op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            )
            new_body = (
                new_op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            )
            if old_body and new_body:
                _compare_schema(old, new, old_body, new_body, f"{where} body", problems, is_input=True)
            for status, old_resp in old_op.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                new_resp = new_op.get("responses", {}).get(status)
                if new_resp is None:
                    problems.append(f"{where}: response {status} removed")
                    continue
                for media, content in old_resp.get("content", {}).items():
                    new_content = new_resp.get("content", {}).get(media)
                    if new_content is None:
                        problems.append(f"{where}: response {status} {media} removed")
                        continue
                    _compare_schema(
                        old,
                        new,
                        content.get("schema", {}),
                        new_content.get("schema", {}),
                        f"{where} {status}",
                        problems,
                        is_input=False,
                    )
    return problems


def check_contracts(directory: Path = CONTRACTS_DIR) -> list[str]:
    """Every difference between the committed documents and the code, as readable lines (empty: all good)."""
    problems: list[str] = []
    generated = generate_contracts()
    for name, document in generated.items():
        path = directory / f"{name}.json"
        if not path.exists():
            problems.append(f"{path}: missing (run `stratum contracts export`)")
            continue
        committed = json.loads(path.read_text())
        for breaking in breaking_changes(committed, document):
            problems.append(f"{name}: breaking change: {breaking}")
        if _dump(committed) != _dump(document):
            problems.append(
                f"{path}: differs from the code (run `stratum contracts export` and review the diff)"
            )
    for path in sorted(directory.glob("*.json")):
        if path.stem not in generated:
            problems.append(f"{path}: no tier generates it any more")
    return problems
