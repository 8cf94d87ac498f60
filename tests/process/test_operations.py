"""Workflow health and sync lag for operations (``GET /process/v1/run-stats``, ``GET
/process/v1/sync-status``) on the whole gateway in process: counts of runs this test made, the invoice
status sync's watermark after a sync, and a state store outage that makes only the figures it holds
unknown."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from apis.config import Settings
from apis.state import StateStoreUnavailable
from process_apis.crm_events import SIGNATURE_HEADER, crm_events_secret, sign_crm_event
from process_apis.invoice_status import WATERMARK_KEY
from process_apis.operations import run_stats
from sandboxes.salesforce.data import (
    MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
)
from tests.process.test_activation_runs import _activate, _clear_faults, _fault, _settings, _until
from tests.process.test_crm_events import event_body

RUN_STATS = "/process/v1/run-stats"
SYNC_STATUS = "/process/v1/sync-status"


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    # Two attempts per step, so a lasting outage dead-letters a run at once.
    return await make_gateway(_settings(make_settings, step_max_attempts=2))


async def _get(gw: Any, path: str, **params: Any) -> dict[str, Any]:
    response = await gw.client.get(path, params=params, headers=gw.auth("process:read"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _health(stats: dict[str, Any], workflow: str) -> dict[str, Any]:
    found: dict[str, Any] = next(w for w in stats["workflows"] if w["workflow"] == workflow)
    return found


async def test_run_stats_count_the_runs_made_by_state_with_throughput_and_failure_rate(gw: Any) -> None:
    empty = await _get(gw, RUN_STATS)
    assert empty["window_seconds"] == 24 * 3600
    assert {w["workflow"] for w in empty["workflows"]} == {
        "project_activation",
        "customer_sync",
        "invoice_status_sync",
        "billing_run",
    }
    assert _health(empty, "project_activation")["failure_rate"] is None

    completed = await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    await _until(gw, completed.json()["id"], "completed")
    parked = await _activate(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID)
    assert parked.json()["state"] == "exception", parked.text
    await _fault(gw, "netsuite", {"kind": "outage", "path_pattern": "^/services/rest/(record|query)/"})
    dead = await _activate(gw, READY_OPPORTUNITY_ID)
    assert dead.json()["state"] == "dead_letter", dead.text
    await _clear_faults(gw, "netsuite")

    stats = await _get(gw, RUN_STATS, window=3600)
    assert stats["window_seconds"] == 3600
    activation = _health(stats, "project_activation")
    assert activation["open"] == {
        "queued": 0,
        "running": 0,
        "retrying": 0,
        "exception": 1,
        "dead_letter": 1,
        "compensating": 0,
    }
    assert activation["ended"] == {"completed": 1, "cancelled": 0, "failed": 0}
    assert activation["dead_lettered"] == 1
    assert activation["throughput"] == 1
    assert activation["throughput_per_hour"] == 1.0
    # One completed, one dead-lettered: half the outcomes were failures.
    assert activation["failure_rate"] == 0.5
    assert _health(stats, "billing_run")["ended"] == {"completed": 0, "cancelled": 0, "failed": 0}


async def test_a_run_that_ended_before_the_window_is_not_counted(gw: Any) -> None:
    completed = await _activate(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    await _until(gw, completed.json()["id"], "completed")
    now = dt.datetime.now(dt.UTC)
    within = _health(msgspec.to_builtins(await run_stats(3600, now=now)), "project_activation")
    assert within["ended"]["completed"] == 1
    # Read two hours on, a one-hour window no longer holds it.
    later = await run_stats(3600, now=now + dt.timedelta(hours=2))
    assert _health(msgspec.to_builtins(later), "project_activation")["ended"]["completed"] == 0


@pytest.mark.parametrize("window", [0, 59, 30 * 24 * 3600 + 1])
async def test_a_window_out_of_bounds_is_refused(gw: Any, window: int) -> None:
    response = await gw.client.get(RUN_STATS, params={"window": window}, headers=gw.auth("process:read"))
    assert response.status_code == 422, response.text


async def test_operations_routes_need_process_read(gw: Any) -> None:
    for path in (RUN_STATS, SYNC_STATUS):
        response = await gw.client.get(path, headers=gw.auth("process:run"))
        assert response.status_code == 403, response.text


def _flow(status: dict[str, Any], flow: str, vendor: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in status["flows"] if (f["flow"], f["vendor"]) == (flow, vendor))
    return found


async def test_sync_status_before_any_sync_says_never_with_a_reason(gw: Any) -> None:
    status = await _get(gw, SYNC_STATUS)
    invoice = _flow(status, "invoice_status_sync", "netsuite")
    assert (invoice["status"], invoice["mode"]) == ("never", "on_demand")  # tests turn the schedule off
    assert invoice.get("lag_seconds") is None
    assert invoice["reason"]
    assert _flow(status, "crm_change_events", "salesforce")["status"] == "never"
    assert _flow(status, "customer_sync", "salesforce")["status"] == "never"


async def test_sync_status_after_an_invoice_status_sync_shows_its_watermark_and_lag(gw: Any) -> None:
    response = await gw.client.post(
        "/process/v1/invoice-status-syncs",
        json={},
        headers={**gw.auth("process:run"), "Idempotency-Key": "ops-sync-1", "Prefer": "wait=30"},
    )
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["state"] == "completed", run

    status = await _get(gw, SYNC_STATUS)
    invoice = _flow(status, "invoice_status_sync", "netsuite")
    assert invoice["status"] == "ok"
    watermark = dt.datetime.fromisoformat(run["result"]["watermark"])
    assert dt.datetime.fromisoformat(invoice["last_data_at"]) == watermark
    assert invoice["last_run_id"] == run["id"]
    as_of = dt.datetime.fromisoformat(status["as_of"])
    assert invoice["lag_seconds"] == int((as_of - watermark).total_seconds())


async def test_a_crm_change_event_is_recorded_as_the_crm_flows_newest_data(gw: Any) -> None:
    committed = int(dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC).timestamp() * 1000)
    body = event_body(event_id="evt-ops-1", commit_ms=committed, Description="a note")
    secret = crm_events_secret(gw.runtime.settings)
    response = await gw.client.post(
        "/process/v1/crm-events",
        content=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_crm_event(body, secret)},
    )
    assert response.status_code == 202, response.text

    crm = _flow(await _get(gw, SYNC_STATUS), "crm_change_events", "salesforce")
    assert crm["status"] == "ok"
    assert dt.datetime.fromisoformat(crm["last_data_at"]) == dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
    assert crm["lag_seconds"] > 0
    assert crm["last_notification_at"]

    # An older change delivered late (events arrive out of order) does not move the newest point back.
    older = event_body(event_id="evt-ops-0", commit_ms=committed - 3_600_000, Description="older")
    late = await gw.client.post(
        "/process/v1/crm-events",
        content=older,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_crm_event(older, secret)},
    )
    assert late.status_code == 202, late.text
    again = _flow(await _get(gw, SYNC_STATUS), "crm_change_events", "salesforce")
    assert again["last_data_at"] == crm["last_data_at"]
    assert again["last_notification_at"] == crm["last_notification_at"]


async def test_a_state_store_outage_makes_only_the_figures_it_holds_unavailable(
    gw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = gw.runtime.store
    await store.set(WATERMARK_KEY, b"2026-01-01T00:00:00+00:00", 3600)

    async def down(key: str) -> bytes | None:
        raise StateStoreUnavailable("get", ConnectionError("redis down (test)"))

    monkeypatch.setattr(store, "get", down)
    status = await _get(gw, SYNC_STATUS)
    invoice = _flow(status, "invoice_status_sync", "netsuite")
    assert invoice["status"] == "unavailable"
    assert invoice.get("lag_seconds") is None
    assert [p["source"] for p in invoice["problems"]] == ["state-store"]
    assert invoice["problems"][0]["code"] == "state-store-unavailable"
    assert _flow(status, "crm_change_events", "salesforce")["status"] == "unavailable"
    # The customer sync's figure is in the run database, which answers.
    assert _flow(status, "customer_sync", "salesforce")["status"] == "never"


async def test_a_business_central_notification_is_shown_on_its_invoice_status_flow(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    gw = await make_gateway(
        make_settings(
            erp_by_legal_entity={"DE01": "business_central"},
            invoice_status={
                "schedule_enabled": False,
                "business_central_client_state": "bc-secret",
                "business_central_subscriptions": False,
            },
        )
    )
    before = await _get(gw, SYNC_STATUS)
    assert _flow(before, "invoice_status_sync", "business_central").get("last_notification_at") is None
    delivery = {
        "value": [
            {
                "subscriptionId": "stratum",
                "clientState": "bc-secret",
                "expirationDateTime": "2099-01-01T00:00:00Z",
                "resource": "api/v2.0/companies(1)/salesInvoices(2)",
                "changeType": "updated",
                "lastModifiedDateTime": "2026-12-01T00:00:00Z",
            }
        ]
    }
    accepted = await gw.client.post("/process/v1/erp-notifications/business-central", json=delivery)
    assert accepted.status_code == 202, accepted.text
    run = await gw.client.get(
        f"/process/v1/invoice-status-syncs/{accepted.json()['run_id']}",
        headers={**gw.auth("process:read"), "Prefer": "wait=30"},
    )
    assert run.json()["state"] == "completed", run.json()

    status = await _get(gw, SYNC_STATUS)
    bc = _flow(status, "invoice_status_sync", "business_central")
    netsuite = _flow(status, "invoice_status_sync", "netsuite")
    assert bc["status"] == "ok"
    assert bc["last_notification_at"] <= status["as_of"]
    assert bc["last_run_id"] == run.json()["id"]
    # NetSuite is polled: no pushes of its own; the one sync spans both ERPs, so the same watermark.
    assert "last_notification_at" not in netsuite
    assert netsuite["last_data_at"] == bc["last_data_at"]
