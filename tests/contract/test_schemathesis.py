"""Contract tests: schemathesis against every tier's published contract, positive and negative data.

The app under test is the whole gateway in process (all tiers, the dev issuer, the Salesforce sandbox), so
generated requests go through the same governance and inter-tier calls as a real caller's.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from typing import Any

import schemathesis
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from apis.config import load_settings
from apis.edge import Edge
from apis.gateway import build_gateway
from apis.routing import IDEMPOTENCY_KEY_PATTERN

_settings = load_settings(
    {},
    data_dir=tempfile.mkdtemp(prefix="stratum-contract-"),
    # Contract tests send hundreds of requests a minute; the budget is not what is under test here.
    rate_limit_system="1000000/minute",
    rate_limit_process="1000000/minute",
    rate_limit_experience="1000000/minute",
    # Nor is a vendor's: every FP&A publish reads the model back first, so the generated calls would run
    # into the Anaplan sandbox's 600 a minute, and its honest 503 would read as a server error.
    sandbox_anaplan_requests_per_minute=1_000_000,
    # Likewise Kantata's 200 a second: a billable-items page reads three Kantata collections, and a PSA
    # invoice write looks before it writes.
    sandbox_kantata_requests_per_second=1_000_000,
    # Runs are queued and read back, never executed: what is under test is the HTTP contract, and each
    # generated call runs on an event loop of its own, where no worker could live.
    workflows={"run_in_process": False},
)
_gateway = build_gateway(_settings)
_edge = Edge(_gateway)


_engine = next(m.app for m in _gateway.mounts if m.prefix == "/process").state.workflow_engine


async def _app(scope: Any, receive: Any, send: Any) -> None:
    # schemathesis' ASGI client runs a lifespan around every call; the gateway's resources live for the
    # whole module instead, so start the runtime when needed (loading the schema is the first call, and a
    # gateway another test module started since takes the process's workflow engine over) and acknowledge
    # lifespan events without stopping it.
    if not _engine.current:
        await _gateway.runtime.start()
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await _edge(scope, receive, send)


assert _gateway.runtime.dev_server is not None
_TOKEN = _gateway.runtime.dev_server.issue_token("stratum-demo")
HEADERS = {"Authorization": f"Bearer {_TOKEN}"}


def _load(tier: str) -> schemathesis.schemas.BaseSchema:
    schema = schemathesis.openapi.from_asgi(f"/{tier}/v1/schema/openapi.json", _app)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=25, deterministic=True
    )
    # A write sent without its required Idempotency-Key is refused with 428 Precondition Required
    # (RFC 6585), the status made for a missing precondition header.
    missing_header = schema.config.checks.missing_required_header
    missing_header.expected_statuses = [*missing_header.expected_statuses, "428"]
    return schema


system = _load("system")
process = _load("process")
experience = _load("experience")


def _headers(case: schemathesis.Case) -> dict[str, str]:
    # The contract declares Idempotency-Key, so schemathesis sends one; a valid one is made fresh per
    # request, as a well-behaved client does (a generated key reused with another body is rightly a 422).
    # A malformed or missing one is left as generated: that is the negative case under test.
    key = (case.headers or {}).get("Idempotency-Key")
    if key is not None and re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
        return {**HEADERS, "Idempotency-Key": uuid.uuid4().hex}
    return HEADERS


def _depends_on_server_state(response: Any) -> bool:
    """A 422 no schema can predict: a cursor this server never issued, a reference (customer, parent,
    manager) the system of record does not have, or an ERP notification URL off this deployment's public
    URL (configuration, not contract). Everything else about the answer is checked."""
    if response.status_code != 422:
        return False
    problem = response.json()
    if problem.get("code") == "vendor-rejected":
        return True
    fields = [e.get("field") for e in problem.get("errors", [])]
    return problem.get("code") == "validation-failed" and fields in (["cursor"], ["notification_url"])


def _call_and_validate(case: schemathesis.Case) -> None:
    response = case.call(headers=_headers(case))
    excluded = [positive_data_acceptance] if _depends_on_server_state(response) else []
    case.validate_response(response, excluded_checks=excluded, headers=_headers(case))


@system.parametrize()
def test_system_contract(case: schemathesis.Case) -> None:
    _call_and_validate(case)


@process.parametrize()
def test_process_contract(case: schemathesis.Case) -> None:
    _call_and_validate(case)


@experience.parametrize()
def test_experience_contract(case: schemathesis.Case) -> None:
    _call_and_validate(case)
