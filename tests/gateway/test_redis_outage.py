"""Redis stops and starts again under a running gateway: what each function does, as a client sees it.

A private redis-server (never the shared one) is stopped mid-traffic. Every answer is then a success or a
503 problem with Retry-After, never a 500; rate limiting lets requests through; a write with an
Idempotency-Key is refused before it runs; the first request after Redis returns works; and no write runs
twice across the restart (counted in the NetSuite sandbox's own records).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from structlog.testing import capture_logs

from apis.config import Settings
from apis.metrics import STATE_STORE_UNAVAILABLE
from process_apis.crm_events import SIGNATURE_HEADER, sign_crm_event
from sandboxes.netsuite.data import DEMO_CUSTOMER_ID, DEMO_PROJECT_ID
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID
from tests.private_redis import PrivateRedis
from tests.process.test_crm_events import won_event

CRM_SECRET = "redis-outage-crm-secret"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def gw(
    make_gateway: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    redis_server: PrivateRedis,
) -> Any:
    return await make_gateway(make_settings(redis_url=redis_server.url, crm_events_secret=CRM_SECRET))


def _invoice(key: str) -> dict[str, Any]:
    return {
        "external_key": key,
        "customer_id": DEMO_CUSTOMER_ID,
        "project_id": DEMO_PROJECT_ID,
        "currency": "USD",
        "issue_date": "2026-11-30",
        "due_date": "2026-12-30",
        "lines": [{"description": "Consulting, November", "quantity": "37.50", "unit_price": "185.00"}],
    }


def _invoices_for(gw: Any, key: str) -> int:
    state = gw.sandbox_state("netsuite")
    return sum(1 for r in state.records["invoice"].values() if r.get("externalId") == key)


async def _raise_invoice(gw: Any, idempotency_key: str, external_key: str) -> httpx.Response:
    headers = {**gw.auth("system:read system:write"), "Idempotency-Key": idempotency_key}
    response: httpx.Response = await gw.client.post(
        "/system/v1/erp/invoices", json=_invoice(external_key), headers=headers
    )
    return response


async def _read_account(gw: Any) -> httpx.Response:
    response: httpx.Response = await gw.client.get(
        f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}", headers=gw.auth("system:read")
    )
    return response


async def _read_events(gw: Any) -> httpx.Response:
    response: httpx.Response = await gw.client.get("/process/v1/events", headers=gw.auth("process:read"))
    return response


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["code"] == "state-store-unavailable"


async def test_a_redis_outage_answers_503_or_success_never_500_and_writes_run_once(
    gw: Any, redis_server: PrivateRedis
) -> None:
    before = uuid.uuid4().hex
    first = await _raise_invoice(gw, before, f"bill-{before}")
    assert first.status_code == 201, first.text
    # Several requests at once leave several connections in the pool, all dead once Redis stops.
    assert {r.status_code for r in await asyncio.gather(*(_read_events(gw) for _ in range(6)))} == {200}

    redis_server.stop()
    during = uuid.uuid4().hex
    with capture_logs() as logs:
        answers = [
            await _read_account(gw),
            await _read_account(gw),
            await _raise_invoice(gw, during, f"bill-{during}"),
            await _raise_invoice(gw, before, f"bill-{before}"),
            await _read_events(gw),
        ]
    assert [a.status_code for a in answers if a.status_code >= 500 and a.status_code != 503] == []
    # Rate limiting fails open: reads go on, with a full budget in the headers, and the outage is logged
    # once, not once per request.
    assert answers[0].status_code == answers[1].status_code == 200
    assert "ratelimit" in answers[0].headers
    assert [e["event"] for e in logs].count("rate_limit_storage_unavailable") == 1
    # A write with an Idempotency-Key is refused before it runs (its vendor record does not exist), and so
    # is its retry: neither can run unguarded.
    _assert_unavailable(answers[2])
    _assert_unavailable(answers[3])
    assert _invoices_for(gw, f"bill-{during}") == 0
    # Event reads answer 503 too: the caller polls again with the same cursor.
    _assert_unavailable(answers[4])

    readiness = await gw.client.get("/health/ready")
    assert readiness.status_code == 503
    assert readiness.json()["failed"] == ["state_store"]

    redis_server.start()
    # The very first request after Redis returns works, on pooled connections that died with the old
    # server; the retried write runs now, once.
    retried = await _raise_invoice(gw, during, f"bill-{during}")
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert _invoices_for(gw, f"bill-{during}") == 1
    # The write answered before the restart is replayed from the persisted record, not run again.
    replay = await _raise_invoice(gw, before, f"bill-{before}")
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert _invoices_for(gw, f"bill-{before}") == 1
    after = await asyncio.gather(*(_read_events(gw) for _ in range(6)))
    assert [r.status_code for r in after] == [200] * 6
    assert (await gw.client.get("/health/ready")).status_code == 200


async def test_the_outage_is_counted_per_function(gw: Any, redis_server: PrivateRedis) -> None:
    def count(function: str) -> float:
        value = STATE_STORE_UNAVAILABLE.labels(function)._value.get()
        return float(value)

    rate_limit, idempotency, events = count("rate_limit"), count("idempotency"), count("events_read")
    redis_server.stop()
    await _raise_invoice(gw, uuid.uuid4().hex, uuid.uuid4().hex)
    await _read_events(gw)
    assert count("rate_limit") == rate_limit + 2
    assert count("idempotency") == idempotency + 1
    assert count("events_read") == events + 1
    metrics = await gw.client.get("/metrics")
    assert 'stratum_state_store_unavailable_total{function="idempotency"}' in metrics.text


async def test_a_crm_event_during_the_outage_is_refused_so_the_relay_redelivers(
    gw: Any, redis_server: PrivateRedis
) -> None:
    body = won_event(f"evt-{uuid.uuid4().hex}")
    headers = {"Content-Type": "application/json"}
    redis_server.stop()
    refused = await gw.client.post(
        "/process/v1/crm-events",
        content=body,
        headers={**headers, SIGNATURE_HEADER: sign_crm_event(body, CRM_SECRET)},
    )
    # Not acted on without its dedupe check: the relay redelivers on a 503.
    _assert_unavailable(refused)
    redis_server.start()
    redelivered = await gw.client.post(
        "/process/v1/crm-events",
        content=body,
        headers={**headers, SIGNATURE_HEADER: sign_crm_event(body, CRM_SECRET)},
    )
    assert redelivered.status_code < 500, redelivered.text


@pytest.mark.parametrize("persistent", [False, True])
async def test_the_gateway_warns_at_start_when_its_redis_would_forget_on_restart(
    tmp_path: Path,
    make_gateway: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    persistent: bool,
) -> None:
    server = PrivateRedis(tmp_path / "redis", persistent=persistent)
    server.start()
    try:
        with capture_logs() as logs:
            await make_gateway(make_settings(redis_url=server.url))
        warned = [e for e in logs if e["event"] == "state_store_not_persistent"]
        assert bool(warned) is not persistent
    finally:
        server.stop()


def test_ensure_redis_starts_a_redis_that_keeps_its_data(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    port = PrivateRedis(tmp_path / "unused").port
    data_dir = tmp_path / "redis-data"
    script = Path(__file__).parents[2] / "scripts" / "ensure-redis"
    env = {**os.environ, "STRATUM_REDIS_PORT": str(port), "STRATUM_REDIS_DATA_DIR": str(data_dir)}
    subprocess.run([str(script)], env=env, check=True, timeout=60)
    client = redis.Redis(port=port)
    try:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("dir") == {"dir": str(data_dir)}
    finally:
        client.shutdown(nosave=False)
        client.close()
