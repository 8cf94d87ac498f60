"""Project activation runs over HTTP on the whole gateway in process, checked in the sandboxes' own state:
one project per won deal, parked runs with an owner and a remedy, retries, dead letters, replay and cancel."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from apis.config import Settings
from sandboxes.salesforce.data import (
    DEMO_ACCOUNT_ID,
    MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_MILESTONE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
    SUBSIDIARY_ACCOUNT_ID,
)

ACTIVATIONS = "/process/v1/project-activations"
STEPS = [
    "crm.check_readiness",
    "erp.upsert_customer",
    "psa.create_project",
    "erp.create_project",
    "erp.create_billing_schedule",
    "psa.raise_staffing_demand",
    "crm.write_back",
    "events.publish_project_activated",
    # The FP&A baseline, last (tests/process/test_fpa_publishing.py).
    "fpa.publish_baseline",
]
FINAL = {"completed", "cancelled", "failed"}
# Vendor calls fail at once (no adapter retries, no breaker), so a fault rule's count is the number of
# failed step attempts; workflow backoff is short, and queued runs are picked up quickly.
VENDOR = {"retry_max_attempts": 1, "breaker_failure_threshold": 0}
WORKFLOWS = {
    "step_backoff_base_seconds": 0.05,
    "step_backoff_max_seconds": 0.2,
    "step_max_attempts": 3,
    "poll_interval_seconds": 0.1,
}


def _settings(make_settings: Callable[..., Settings], **workflows: Any) -> Settings:
    return make_settings(
        workflows={**WORKFLOWS, **workflows}, netsuite=VENDOR, kantata=VENDOR, salesforce=VENDOR
    )


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(_settings(make_settings))


# --- HTTP -------------------------------------------------------------------------------------------------


def _headers(gw: Any, scopes: str, **extra: str) -> dict[str, str]:
    return {**gw.auth(scopes), "Idempotency-Key": uuid.uuid4().hex, **extra}


async def _activate(gw: Any, opportunity_id: str, *, wait: int | None = 30) -> httpx.Response:
    extra = {"Prefer": f"wait={wait}"} if wait else {}
    return await gw.client.post(
        ACTIVATIONS, json={"opportunity_id": opportunity_id}, headers=_headers(gw, "process:run", **extra)
    )


async def _activated(gw: Any, opportunity_id: str) -> dict[str, Any]:
    response = await _activate(gw, opportunity_id)
    assert response.status_code == 202, response.text
    return await _until(gw, response.json()["id"], "completed")


async def _get(gw: Any, run_id: str, *, wait: int | None = None) -> dict[str, Any]:
    headers = gw.auth("process:read")
    if wait:
        headers["Prefer"] = f"wait={wait}"
    response = await gw.client.get(f"{ACTIVATIONS}/{run_id}", headers=headers)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


async def _until(gw: Any, run_id: str, *states: str, seconds: float = 45) -> dict[str, Any]:
    """The run once it is in one of ``states``: waits on the server, and polls past a parked state that a
    replay or cancel has not been acted on yet."""
    deadline = time.monotonic() + seconds
    while True:
        run = await _get(gw, run_id, wait=5)
        if run["state"] in states:
            return run
        assert run["state"] not in FINAL, f"run {run_id} ended {run['state']}, not {states}: {run}"
        assert time.monotonic() < deadline, f"run {run_id} is still {run['state']}, not {states}: {run}"
        await asyncio.sleep(0.05)


async def _control(gw: Any, run_id: str, action: str, scopes: str = "process:admin") -> httpx.Response:
    response: httpx.Response = await gw.client.post(
        f"/process/v1/runs/{run_id}/{action}", headers=_headers(gw, scopes)
    )
    return response


async def _listing(gw: Any, path: str, **params: Any) -> dict[str, Any]:
    response = await gw.client.get(path, params=params, headers=gw.auth("process:read"))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def _fault(gw: Any, vendor: str, rule: dict[str, Any]) -> None:
    async with gw.sandbox(vendor) as sandbox:
        response = await sandbox.post("/__sandbox/faults", json=rule)
        assert response.status_code == 201, response.text


async def _clear_faults(gw: Any, vendor: str) -> None:
    async with gw.sandbox(vendor) as sandbox:
        assert (await sandbox.delete("/__sandbox/faults")).status_code == 204


def _timeline(run: dict[str, Any]) -> list[tuple[str, str]]:
    return [(step["name"], step["outcome"]) for step in run["steps"]]


# --- the sandboxes' own state -------------------------------------------------------------------------------


def _netsuite(gw: Any, record_type: str, external_id: str) -> list[dict[str, Any]]:
    records = gw.sandbox_state("netsuite").records[record_type].values()
    return [r for r in records if r.get("externalId") == external_id]


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return sorted(str(r["id"]) for r in records)


def _workspaces(gw: Any, opportunity_id: str) -> list[dict[str, Any]]:
    kantata = gw.sandbox_state("kantata")
    ids = {
        str(ref["subject_id"])
        for ref in kantata.records["external_references"].values()
        if ref.get("service_model_ref") == opportunity_id and ref["subject_type"] == "Workspace"
    }
    return [w for w in kantata.records["workspaces"].values() if str(w["id"]) in ids]


def _demands(gw: Any, workspace_id: str) -> list[dict[str, Any]]:
    resources = gw.sandbox_state("kantata").records["workspace_resources"].values()
    return [r for r in resources if str(r["workspace_id"]) == workspace_id]


def _opportunity(gw: Any, opportunity_id: str) -> dict[str, Any]:
    record: dict[str, Any] = gw.sandbox_state("salesforce").records["Opportunity"][opportunity_id]
    return record


def _rate_card_lines(gw: Any, opportunity_id: str) -> int:
    lines = gw.sandbox_state("salesforce").records["Rate_Card_Line__c"].values()
    return sum(1 for line in lines if line["Opportunity__c"] == opportunity_id)


def _counts(gw: Any) -> dict[str, dict[str, int]]:
    return {
        vendor: {kind: len(records) for kind, records in gw.sandbox_state(vendor).records.items()}
        for vendor in ("salesforce", "netsuite", "kantata")
    }


def _records_of(gw: Any, opportunity_id: str, crm_customer_id: str) -> dict[str, list[str]]:
    """Every record activation makes for the deal, by kind: the ids say whether anything was duplicated."""
    workspaces = _ids(_workspaces(gw, opportunity_id))
    return {
        "erp customers": _ids(_netsuite(gw, "customer", crm_customer_id)),
        "erp projects": _ids(_netsuite(gw, "job", opportunity_id)),
        "billing schedules": _ids(_netsuite(gw, "billingSchedule", f"{opportunity_id}.billing")),
        "psa projects": workspaces,
        "staffing demands": sorted(str(d["id"]) for w in workspaces for d in _demands(gw, w)),
    }


def _expected_records(run: dict[str, Any]) -> dict[str, list[str]]:
    result = run["result"]
    return {
        "erp customers": [result["erp_customer_id"]],
        "erp projects": [result["erp_project_id"]],
        "billing schedules": [result["billing_schedule_id"]],
        "psa projects": [result["psa_project_id"]],
        "staffing demands": sorted(result["staffing_demand_ids"]),
    }


# --- a ready deal ---------------------------------------------------------------------------------------


async def test_a_ready_deal_becomes_one_staffed_billable_project(gw: Any) -> None:
    response = await _activate(gw, READY_OPPORTUNITY_ID)
    assert response.status_code == 202, response.text
    assert response.headers["preference-applied"] == "wait=30"
    run = response.json()
    assert run["state"] == "completed", run
    assert response.headers["location"] == f"{ACTIVATIONS}/{run['id']}"
    assert (run["workflow"], run["subject"], run["trigger"]) == (
        "project_activation",
        READY_OPPORTUNITY_ID,
        "api",
    )
    assert run["completed_at"] is not None
    assert "issue" not in run
    result = run["result"]
    assert (result["opportunity_id"], result["crm_customer_id"]) == (READY_OPPORTUNITY_ID, DEMO_ACCOUNT_ID)
    for key in ("erp_customer_id", "psa_project_id", "erp_project_id", "billing_schedule_id"):
        assert result[key], key

    # Exactly one of each record, in each system, and they are the ones the run reports.
    assert _records_of(gw, READY_OPPORTUNITY_ID, DEMO_ACCOUNT_ID) == _expected_records(run)
    assert len(result["staffing_demand_ids"]) == _rate_card_lines(gw, READY_OPPORTUNITY_ID) == 4
    (job,) = _netsuite(gw, "job", READY_OPPORTUNITY_ID)
    assert str(job["billingSchedule"]) == result["billing_schedule_id"]
    assert str(job["parent"]) == result["erp_customer_id"]
    (schedule,) = _netsuite(gw, "billingSchedule", f"{READY_OPPORTUNITY_ID}.billing")
    assert schedule["isInactive"] is False
    (workspace,) = _workspaces(gw, READY_OPPORTUNITY_ID)
    assert workspace["archived"] is False

    # The CRM knows where the deal now lives.
    opportunity = _opportunity(gw, READY_OPPORTUNITY_ID)
    assert opportunity["Activation_Status__c"] == "Activated"
    assert opportunity["Project_Id__c"] == result["psa_project_id"]
    assert opportunity["ERP_Project_Id__c"] == result["erp_project_id"]

    # One business event says so.
    events = await gw.client.get(
        "/process/v1/events", params={"type": "project.activated"}, headers=gw.auth("process:read")
    )
    assert events.status_code == 200, events.text
    activated = [e for e in events.json()["items"] if e["subject"] == READY_OPPORTUNITY_ID]
    assert len(activated) == 1
    assert activated[0]["data"]["run_id"] == run["id"]
    assert activated[0]["data"]["psa_project_id"] == result["psa_project_id"]

    # The timeline: each step once, in order, completed.
    assert _timeline(run) == [(name, "completed") for name in STEPS]
    assert {step["attempt"] for step in run["steps"]} == {1}
    assert run == await _get(gw, run["id"])


async def test_activating_a_deal_again_returns_its_run_and_changes_nothing(gw: Any) -> None:
    first = await _activated(gw, READY_OPPORTUNITY_ID)
    counts = _counts(gw)
    records = _records_of(gw, READY_OPPORTUNITY_ID, DEMO_ACCOUNT_ID)
    opportunity = dict(_opportunity(gw, READY_OPPORTUNITY_ID))

    again = await _activate(gw, READY_OPPORTUNITY_ID)  # a new Idempotency-Key: a new request
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    assert again.json()["state"] == "completed"
    assert again.json()["result"] == first["result"]

    assert _counts(gw) == counts
    assert _records_of(gw, READY_OPPORTUNITY_ID, DEMO_ACCOUNT_ID) == records
    assert _opportunity(gw, READY_OPPORTUNITY_ID) == opportunity


# --- exceptions: a person fixes the data, then replays ---------------------------------------------------


async def test_a_deal_without_legal_entity_waits_for_sales_operations_then_replays(gw: Any) -> None:
    response = await _activate(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID)
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["state"] == "exception", run
    issue = run["issue"]
    assert (issue["kind"], issue["owner"], issue["step"]) == (
        "exception",
        "sales_operations",
        "crm.check_readiness",
    )
    assert "legal entity" in issue["remediation"].lower()
    assert [rule["rule"] for rule in issue["data"]["failed_rules"]] == ["legal_entity"]
    assert run["links"]["replay"] == f"/process/v1/runs/{run['id']}/replay"
    # Nothing was made anywhere for a deal that is not ready.
    assert _workspaces(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID) == []
    assert _netsuite(gw, "customer", SUBSIDIARY_ACCOUNT_ID) == []

    sales_ops = await _listing(gw, "/process/v1/exceptions", owner="sales_operations")
    assert run["id"] in [item["id"] for item in sales_ops["items"]]
    finance = await _listing(gw, "/process/v1/exceptions", owner="finance")
    assert run["id"] not in [item["id"] for item in finance["items"]]

    # Sales operations sets the legal entity in the CRM (Globex UK contracts with the UK entity).
    _opportunity(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID)["Legal_Entity__c"] = "GB01"
    replay = await _control(gw, run["id"], "replay")
    assert replay.status_code == 202, replay.text

    # Whoever replayed waits for the outcome, not for the state the run was parked in.
    done = await _get(gw, run["id"], wait=30)
    assert done["state"] == "completed", done
    assert "issue" not in done
    assert done["result"]["psa_project_id"]
    timeline = _timeline(done)
    assert timeline[:3] == [
        ("crm.check_readiness", "failed"),
        ("publish.run_parked", "completed"),
        ("crm.check_readiness", "completed"),
    ]
    assert [name for name, outcome in timeline[2:] if outcome == "completed"] == STEPS
    assert _records_of(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID, SUBSIDIARY_ACCOUNT_ID) == _expected_records(
        done
    )
    assert _opportunity(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID)["Activation_Status__c"] == "Activated"
    remaining = await _listing(gw, "/process/v1/exceptions", owner="sales_operations")
    assert run["id"] not in [item["id"] for item in remaining["items"]]


async def test_only_a_parked_run_can_be_replayed_and_only_an_unfinished_one_cancelled(gw: Any) -> None:
    run = await _activated(gw, READY_OPPORTUNITY_ID)
    replay = await _control(gw, run["id"], "replay")
    assert replay.status_code == 409, replay.text
    assert replay.headers["content-type"] == "application/problem+json"
    cancel = await _control(gw, run["id"], "cancel")
    assert cancel.status_code == 409, cancel.text
    assert (await _get(gw, run["id"]))["state"] == "completed"

    for action in ("replay", "cancel"):
        unknown = await _control(gw, "pa-no-such-run", action)
        assert unknown.status_code == 404, unknown.text
    missing = await gw.client.get(f"{ACTIVATIONS}/pa-no-such-run", headers=gw.auth("process:read"))
    assert missing.status_code == 404

    parked = (await _activate(gw, MISSING_LEGAL_ENTITY_OPPORTUNITY_ID)).json()
    assert parked["state"] == "exception"
    for action in ("replay", "cancel"):
        refused = await _control(gw, parked["id"], action, scopes="process:run process:read")
        assert refused.status_code == 403, refused.text
    assert (await _get(gw, parked["id"]))["state"] == "exception"


# --- technical failures: retried, then dead-lettered ---------------------------------------------------


async def test_an_erp_outage_is_retried_and_the_run_completes_without_duplicates(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    gw = await make_gateway(_settings(make_settings, step_max_attempts=4))
    # NetSuite is down for its next two writes: the customer upsert fails twice, then gets through.
    await _fault(
        gw,
        "netsuite",
        {"kind": "outage", "method": "PUT", "path_pattern": "^/services/rest/record/", "times": 2},
    )
    response = await _activate(gw, READY_OPPORTUNITY_ID)
    assert response.status_code == 202, response.text
    run = await _until(gw, response.json()["id"], "completed")

    retried = [step for step in run["steps"] if step["outcome"] == "retried"]
    assert [(step["name"], step["attempt"]) for step in retried] == [
        ("erp.upsert_customer", 1),
        ("erp.upsert_customer", 2),
    ]
    assert all(step["error"].startswith("vendor-unavailable") for step in retried)
    assert [name for name, outcome in _timeline(run) if outcome == "completed"] == STEPS
    assert _records_of(gw, READY_OPPORTUNITY_ID, DEMO_ACCOUNT_ID) == _expected_records(run)


async def test_a_lasting_erp_outage_dead_letters_the_run_until_it_is_replayed(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    gw = await make_gateway(_settings(make_settings, step_max_attempts=2))
    await _fault(gw, "netsuite", {"kind": "outage", "path_pattern": "^/services/rest/(record|query)/"})
    response = await _activate(gw, READY_OPPORTUNITY_ID)
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["state"] == "dead_letter", run
    issue = run["issue"]
    assert (issue["kind"], issue["owner"], issue["step"]) == (
        "dead_letter",
        "integration_operations",
        "erp.upsert_customer",
    )
    assert issue["code"] == "vendor-unavailable"
    assert [(s["name"], s["outcome"]) for s in run["steps"] if s["name"] == "erp.upsert_customer"] == [
        ("erp.upsert_customer", "retried"),
        ("erp.upsert_customer", "failed"),
    ]
    dead = await _listing(gw, "/process/v1/dead-letters")
    assert [item["id"] for item in dead["items"]] == [run["id"]]
    assert dead["items"][0]["issue"]["owner"] == "integration_operations"
    exceptions = await _listing(gw, "/process/v1/exceptions")
    assert run["id"] not in [item["id"] for item in exceptions["items"]]

    await _clear_faults(gw, "netsuite")
    replay = await _control(gw, run["id"], "replay")
    assert replay.status_code == 202, replay.text
    done = await _until(gw, run["id"], "completed")
    assert _records_of(gw, READY_OPPORTUNITY_ID, DEMO_ACCOUNT_ID) == _expected_records(done)
    assert (await _listing(gw, "/process/v1/dead-letters"))["items"] == []


# --- cancel: compensate in reverse -------------------------------------------------------------------------


async def test_cancelling_a_parked_run_undoes_what_it_made(gw: Any) -> None:
    # Kantata refuses every new staffing demand: the run parks after the projects and the schedule exist.
    await _fault(
        gw,
        "kantata",
        {
            "kind": "error",
            "method": "POST",
            "path_pattern": "workspace_resources",
            "status": 422,
            "body": '{"errors":[{"type":"validation","message":"is not staffable","field":"role_id"}]}',
            "content_type": "application/json; charset=utf-8",
        },
    )
    response = await _activate(gw, READY_OPPORTUNITY_ID)
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["state"] == "exception", run
    assert (run["issue"]["step"], run["issue"]["owner"]) == (
        "psa.raise_staffing_demand",
        "project_operations",
    )
    (workspace,) = _workspaces(gw, READY_OPPORTUNITY_ID)
    (schedule,) = _netsuite(gw, "billingSchedule", f"{READY_OPPORTUNITY_ID}.billing")
    assert workspace["archived"] is False
    assert schedule["isInactive"] is False

    cancel = await _control(gw, run["id"], "cancel")
    assert cancel.status_code == 202, cancel.text
    done = await _until(gw, run["id"], "cancelled")

    assert done["result"]["cancelled"] is True
    assert done["links"] == {"self": f"{ACTIVATIONS}/{run['id']}"}
    compensations = [(name, outcome) for name, outcome in _timeline(done) if name.startswith("compensate.")]
    assert compensations == [
        ("compensate.erp.void_billing_schedule", "compensated"),
        ("compensate.psa.close_project", "compensated"),
        ("compensate.crm.revert_write_back", "compensated"),
    ]
    # The PSA project is closed, the billing schedule voided and off the project, the CRM told.
    (workspace,) = _workspaces(gw, READY_OPPORTUNITY_ID)
    assert workspace["archived"] is True
    (schedule,) = _netsuite(gw, "billingSchedule", f"{READY_OPPORTUNITY_ID}.billing")
    assert schedule["isInactive"] is True
    (job,) = _netsuite(gw, "job", READY_OPPORTUNITY_ID)
    assert job["billingSchedule"] is None
    assert _demands(gw, str(workspace["id"])) == []
    assert _opportunity(gw, READY_OPPORTUNITY_ID)["Activation_Status__c"] == "Cancelled"


@pytest.mark.parametrize("check", ["in-step", "recv"])
async def test_cancelling_a_retrying_run_stops_it_at_its_next_attempt(
    check: str,
    make_gateway: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A running run looks for a cancel before each attempt: inside the attempt's checkpoint (runs started
    now), or as a recv before it (runs started before that existed, which keep the checks they began with)."""
    from process_apis import runs, saga

    if check == "recv":
        started_as = runs._start_attributes

        def attributes_of_an_older_start(subject: str, trigger: str) -> dict[str, Any]:
            attributes = started_as(subject, trigger)
            del attributes[saga.CONTROL_CHECK]
            return attributes

        monkeypatch.setattr(runs, "_start_attributes", attributes_of_an_older_start)
    gw = await make_gateway(_settings(make_settings, step_max_attempts=None))
    # Kantata is down for staffing demands for as long as the test lasts: the run retries that step.
    await _fault(gw, "kantata", {"kind": "outage", "path_pattern": "workspace_resources"})
    response = await _activate(gw, READY_OPPORTUNITY_ID, wait=None)
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    await _until(gw, run_id, "retrying")

    cancel = await _control(gw, run_id, "cancel")
    assert cancel.status_code == 202, cancel.text
    done = await _until(gw, run_id, "cancelled")
    await _clear_faults(gw, "kantata")

    timeline = _timeline(done)
    assert {name for name, _ in timeline} <= {*STEPS, "compensate.erp.void_billing_schedule"} | {
        "compensate.psa.close_project",
        "compensate.crm.revert_write_back",
    }
    assert [outcome for name, outcome in timeline if name == "psa.raise_staffing_demand"] == [
        "retried"
    ] * len([1 for name, _ in timeline if name == "psa.raise_staffing_demand"])
    assert [name for name, outcome in timeline if outcome == "compensated"] == [
        "compensate.erp.void_billing_schedule",
        "compensate.psa.close_project",
        "compensate.crm.revert_write_back",
    ]
    (workspace,) = _workspaces(gw, READY_OPPORTUNITY_ID)
    assert workspace["archived"] is True
    assert _demands(gw, str(workspace["id"])) == []
    assert _opportunity(gw, READY_OPPORTUNITY_ID)["Activation_Status__c"] == "Cancelled"
    # In the step, only the cancel itself is a recv; before it, every attempt made one.
    from dbos import DBOS

    recvs = [s for s in await DBOS.list_workflow_steps_async(run_id) if s["function_name"] == "DBOS.recv"]
    assert (len(recvs) == 1) == (check == "in-step"), len(recvs)


# --- listing runs -----------------------------------------------------------------------------------------


async def test_runs_are_listed_by_state_and_workflow_and_page_to_the_end(gw: Any) -> None:
    opportunities = [READY_OPPORTUNITY_ID, READY_FIXED_FEE_OPPORTUNITY_ID, READY_MILESTONE_OPPORTUNITY_ID]
    started = [await _activate(gw, opportunity_id, wait=None) for opportunity_id in opportunities]
    assert [r.status_code for r in started] == [202, 202, 202], [r.text for r in started]
    run_ids = {(await _until(gw, r.json()["id"], "completed"))["id"] for r in started}
    assert len(run_ids) == 3

    completed = await _listing(gw, "/process/v1/runs", state="completed", workflow="project_activation")
    assert {item["id"] for item in completed["items"]} == run_ids
    assert all(item["state"] == "completed" for item in completed["items"])
    assert all(item.get("steps", []) == [] for item in completed["items"])  # a listing has no timelines
    assert (await _listing(gw, "/process/v1/runs", state="exception"))["items"] == []
    assert (await _listing(gw, "/process/v1/runs", workflow="customer_sync"))["items"] == []

    bogus = await gw.client.get(
        "/process/v1/runs", params={"state": "bogus"}, headers=gw.auth("process:read")
    )
    assert bogus.status_code == 422, bogus.text
    assert bogus.headers["content-type"] == "application/problem+json"

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(run_ids) + 2):
        params: dict[str, Any] = {"state": "completed", "workflow": "project_activation", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = await _listing(gw, "/process/v1/runs", **params)
        assert len(page["items"]) <= 1
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert cursor is None, "paging did not end"
    assert len(seen) == len(set(seen)) == 3
    assert set(seen) == run_ids
