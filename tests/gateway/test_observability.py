"""Correlation ids, the JSON access log, redaction, metrics and health, as an operator sees them."""

from __future__ import annotations

import io
import json
from typing import Any

import structlog
from structlog.testing import capture_logs

from apis.logging import REDACTED, configure_logging, redact


async def test_correlation_id_is_minted_echoed_and_accepted(gw: Any) -> None:
    minted = await gw.client.get("/health/live")
    assert len(minted.headers["x-correlation-id"]) == 32
    given = await gw.client.get("/health/live", headers={"X-Correlation-ID": "order-4711"})
    assert given.headers["x-correlation-id"] == "order-4711"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = await gw.client.get(
        "/health/live", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )
    assert traced.headers["x-correlation-id"] == trace_id
    hostile = await gw.client.get("/health/live", headers={"X-Correlation-ID": "bad id\r\nwith spaces"})
    assert hostile.headers["x-correlation-id"] != "bad id\r\nwith spaces"


async def test_one_access_line_per_request_with_the_caller(gw: Any) -> None:
    with capture_logs() as logs:
        response = await gw.client.get(
            "/system/v1/crm/accounts/nope", headers={**gw.auth("system:read"), "X-Correlation-ID": "c-1"}
        )
    lines = [e for e in logs if e["event"] == "request" and e.get("path") == "/system/v1/crm/accounts/nope"]
    assert len(lines) == 1
    line = lines[0]
    assert line["status"] == response.status_code
    assert line["client_id"] == "stratum-demo"
    assert line["tier"] == "system"
    assert line["route"] == "/system/v1/crm/accounts/{account_id}"
    assert line["method"] == "GET"


def test_redaction_removes_tokens_and_secrets() -> None:
    event = {
        "event": "outbound",
        "headers": {"Authorization": "Bearer abc.def.ghi", "Accept": "application/json"},
        "client_secret": "s3cret",
        "note": "sent Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln to the vendor",
        "password": "hunter2",
    }
    rendered = json.dumps(redact(None, "info", dict(event)))
    for secret in ("abc.def.ghi", "s3cret", "eyJhbGciOiJSUzI1NiJ9", "hunter2"):
        assert secret not in rendered
    assert REDACTED in rendered
    assert "application/json" in rendered


def test_the_configured_pipeline_redacts_before_rendering() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream, force=True)
    try:
        structlog.contextvars.bind_contextvars(correlation_id="c-9")
        structlog.get_logger("test").info(
            "token_issued", access_token="eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", client_id="c"
        )
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
        structlog.configure(cache_logger_on_first_use=False)
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["event"] == "token_issued"
    assert line["access_token"] == REDACTED
    assert line["correlation_id"] == "c-9"
    assert line["level"] == "info"
    assert "timestamp" in line


async def test_metrics_count_requests_by_tier_route_and_status(gw: Any) -> None:
    await gw.client.get("/system/v1/crm/accounts/nope", headers=gw.auth("system:read"))
    text = (await gw.client.get("/metrics")).text
    assert 'stratum_http_requests_total{method="GET",route="/system/v1/crm/accounts/{account_id}"' in text
    assert 'tier="system"' in text
    assert "stratum_http_request_duration_seconds_bucket" in text


async def test_health(gw: Any) -> None:
    assert (await gw.client.get("/health/live")).json() == {"status": "ok"}
    ready = await gw.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"state_store": True, "run_database": True, "signing_keys": True}


async def test_catalogue_lists_tiers_versions_and_contracts(gw: Any) -> None:
    catalogue = (await gw.client.get("/")).json()
    tiers = {t["name"]: t for t in catalogue["tiers"]}
    assert set(tiers) == {"system", "process", "experience"}
    for name, tier in tiers.items():
        assert tier["version"] == "v1"
        contract = await gw.client.get(tier["contract"])
        assert contract.status_code == 200
        assert contract.json()["info"]["title"].startswith("Stratum")
        reference = await gw.client.get(tier["reference"])
        assert reference.status_code == 200
        assert "text/html" in reference.headers["content-type"], name


async def test_only_tier_clients_may_name_the_original_caller(gw: Any) -> None:
    forged = {"X-Stratum-On-Behalf-Of": "the-ceo", "X-Correlation-ID": "forged-1"}
    with capture_logs() as logs:
        await gw.client.get("/system/v1/crm/accounts/nope", headers={**gw.auth("system:read"), **forged})
        await gw.client.get(
            "/system/v1/crm/accounts/nope",
            headers={
                **gw.auth("system:read", "stratum-process-tier"),
                "X-Stratum-On-Behalf-Of": "stratum-demo",
            },
        )
    lines = [e for e in logs if e["event"] == "request" and e.get("path") == "/system/v1/crm/accounts/nope"]
    assert [(line["client_id"], line["on_behalf_of"]) for line in lines] == [
        ("stratum-demo", None),
        ("stratum-process-tier", "stratum-demo"),
    ]
