"""Durable workflows end to end: `stratum serve` (HTTP, no workflows of its own) and two `stratum worker`
processes sharing runs through a real PostgreSQL, gateway state and events through a real Redis, the vendor
sandboxes reached over HTTP. Every check of "exactly one record" reads the sandbox's own store.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from process_apis.crm_events import SIGNATURE_HEADER, sign_crm_event
from sandboxes.salesforce.data import (
    MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
    OPEN_OPPORTUNITY_ID,
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_MILESTONE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
    READY_RETAINER_OPPORTUNITY_ID,
)
from tests.e2e import harness

REDIS_DB_URL = "redis://127.0.0.1:6379/13"
CRM_EVENTS_SECRET = "e2e-crm-events-secret"
WAIT = 60


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, database: str, redis_url: str) -> Iterator[Fleet]:
    import redis

    redis.Redis.from_url(REDIS_DB_URL).flushdb()
    fleet = Fleet(tmp_path_factory.mktemp("workflows"), database)
    yield fleet
    fleet.stop()


class Fleet(harness.Fleet):
    """One gateway serving HTTP and two workers running the workflows."""

    def __init__(self, tmp: Path, database: str) -> None:
        super().__init__(
            tmp,
            database,
            REDIS_DB_URL,
            wait=WAIT,
            STRATUM_WORKFLOWS__STEP_MAX_ATTEMPTS="4",
            STRATUM_CRM_EVENTS_SECRET=CRM_EVENTS_SECRET,
        )

    # -- process tier ----------------------------------------------------------------------------------

    def activate(self, opportunity_id: str, wait: int = WAIT) -> httpx.Response:
        return self.post(
            "/process/v1/project-activations", {"opportunity_id": opportunity_id}, Prefer=f"wait={wait}"
        )

    def run(self, run_id: str, wait: int | None = None) -> dict[str, Any]:
        headers = {"Prefer": f"wait={wait}"} if wait else {}
        response = self.http.get(f"/process/v1/project-activations/{run_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_for_state(self, run_id: str, *states: str, timeout: float = WAIT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run["state"] in states or time.monotonic() > deadline:
                assert run["state"] in states, json.dumps(run, indent=1)
                return run
            time.sleep(0.2)

    def events(self, type_: str, subject: str) -> list[dict[str, Any]]:
        found, cursor = [], None
        while True:
            params = {"type": type_, "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = self.http.get("/process/v1/events", params=params).json()
            found += [e for e in page["items"] if e["subject"] == subject]
            if not page["items"]:
                return found
            cursor = page["next_cursor"]

    # -- the vendors, as they are --------------------------------------------------------------------------

    def records(self, vendor: str, record_type: str, **where: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/sandboxes/{vendor}/__sandbox/records/{record_type}", params=where)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def fault(self, vendor: str, **rule: Any) -> str:
        response = self.http.post(f"/sandboxes/{vendor}/__sandbox/faults", json=rule)
        assert response.status_code == 201, response.text
        fault_id: str = response.json()["id"]
        return fault_id

    def clear_faults(self, vendor: str) -> None:
        assert self.http.delete(f"/sandboxes/{vendor}/__sandbox/faults").status_code == 204

    def salesforce_update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        self.server.salesforce_update(sobject, record_id, fields)

    def assert_activated_once(self, run: dict[str, Any]) -> None:
        """One of everything a won deal becomes, in each vendor's own store."""
        result = run["result"]
        opportunity_id = result["opportunity_id"]
        customers = self.records("netsuite", "customer", externalId=result["crm_customer_id"])
        assert [c["id"] for c in customers] == [result["erp_customer_id"]]
        jobs = self.records("netsuite", "job", externalId=opportunity_id)
        assert [j["id"] for j in jobs] == [result["erp_project_id"]]
        schedules = self.records("netsuite", "billingSchedule", externalId=f"{opportunity_id}.billing")
        assert [s["id"] for s in schedules] == [result["billing_schedule_id"]]
        workspaces = self.psa_projects(opportunity_id)
        assert [w["id"] for w in workspaces] == [result["psa_project_id"]]
        demands = self.records("kantata", "workspace_resources", workspace_id=result["psa_project_id"])
        assert len(demands) == len(result["staffing_demand_ids"]) >= 1
        opportunity = self.records("salesforce", "Opportunity", Id=opportunity_id)[0]
        assert opportunity["Activation_Status__c"] == "Activated"
        assert opportunity["Project_Id__c"] == result["psa_project_id"]
        assert len(self.events("project.activated", opportunity_id)) == 1

    def psa_projects(self, opportunity_id: str) -> list[dict[str, Any]]:
        """Kantata workspaces linked to the opportunity by Stratum's external reference."""
        links = self.records(
            "kantata",
            "external_references",
            subject_type="Workspace",
            service_name="Stratum",
            service_model_ref=opportunity_id,
        )
        return [
            w for link in links for w in self.records("kantata", "workspaces", id=str(link["subject_id"]))
        ]


def _steps(run: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in run["steps"] if s["name"] == name]


def test_a_closed_won_deal_becomes_exactly_one_of_everything(fleet: Fleet) -> None:
    response = fleet.activate(READY_OPPORTUNITY_ID)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/process/v1/project-activations/pa-{READY_OPPORTUNITY_ID}"
    run = response.json()
    assert run["state"] == "completed", json.dumps(run, indent=1)
    assert [s["name"] for s in run["steps"] if s["outcome"] == "completed"] == [
        "crm.check_readiness",
        "erp.upsert_customer",
        "psa.create_project",
        "erp.create_project",
        "erp.create_billing_schedule",
        "psa.raise_staffing_demand",
        "crm.write_back",
        "events.publish_project_activated",
        "fpa.publish_baseline",
    ]
    fleet.assert_activated_once(run)

    again = fleet.activate(READY_OPPORTUNITY_ID)
    assert again.status_code == 200
    assert again.json()["id"] == run["id"]
    fleet.assert_activated_once(run)

    # Each worker serves the metrics of the steps it ran; between them, every step of this run.
    timed = 0.0
    for worker in fleet.workers:
        for line in httpx.get(worker.metrics_url).text.splitlines():
            name = "stratum_workflow_step_duration_seconds_count"
            if line.startswith(name) and 'step="psa.create_project"' in line:
                timed += float(line.rsplit(" ", 1)[1])
    assert timed == 1


def test_an_erp_outage_in_the_middle_of_a_run_is_waited_out(fleet: Fleet) -> None:
    # The ERP project is the fourth step: the customer and the PSA project are done when the ERP goes down.
    fleet.fault("netsuite", kind="outage", path_pattern=r"/record/v1/job")
    try:
        started = fleet.activate(READY_FIXED_FEE_OPPORTUNITY_ID, wait=1).json()
        retrying = fleet.wait_for_state(started["id"], "retrying")
        assert retrying["steps"][-1]["name"] == "erp.create_project"
        assert retrying["steps"][-1]["outcome"] == "retried"
    finally:
        fleet.clear_faults("netsuite")
    run = fleet.run(started["id"], wait=WAIT)
    assert run["state"] == "completed", json.dumps(run, indent=1)
    assert len(_steps(run, "erp.create_project")) >= 2
    fleet.assert_activated_once(run)


def test_a_killed_worker_s_run_is_finished_by_the_other(fleet: Fleet, database: str) -> None:
    # Slow the PSA down so the run is surely in flight when its worker dies.
    fleet.fault("kantata", kind="latency", latency_ms=1500, path_pattern=r"workspace")
    try:
        started = fleet.activate(READY_MILESTONE_OPPORTUNITY_ID, wait=1).json()
        holder = _holder_pid(database, started["id"])
        victim = next(w for w in fleet.workers if w.pid == holder)
        victim.kill()
    finally:
        fleet.clear_faults("kantata")
    run = fleet.run(started["id"], wait=WAIT)
    assert run["state"] == "completed", json.dumps(run, indent=1)
    survivor = next(w for w in fleet.workers if w is not victim)
    assert _holder_pid(database, started["id"], running=False) == survivor.pid
    fleet.assert_activated_once(run)
    # Keep two workers for the tests after this one.
    fleet.workers = [survivor, fleet.worker("worker-3")]


def _holder_pid(database: str, run_id: str, *, running: bool = True) -> int:
    """The pid of the worker that holds (or, ``running=False``, last held) the run; executor ids are
    host-pid-random."""
    deadline = time.monotonic() + WAIT
    with psycopg.connect(database) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT executor_id, status FROM dbos.workflow_status WHERE workflow_uuid = %s", (run_id,)
            ).fetchone()
            conn.commit()
            if row and (row[1] == "PENDING" or not running) and row[0].count("-") >= 2:
                return int(row[0].rsplit("-", 2)[1])
            time.sleep(0.05)
    raise AssertionError(f"no worker took {run_id}")


def test_a_missing_legal_entity_parks_for_sales_operations_until_fixed_and_replayed(fleet: Fleet) -> None:
    run = fleet.activate(MISSING_LEGAL_ENTITY_OPPORTUNITY_ID).json()
    assert run["state"] == "exception", json.dumps(run, indent=1)
    issue = run["issue"]
    assert issue["owner"] == "sales_operations"
    assert issue["step"] == "crm.check_readiness"
    assert "legal entity" in issue["remediation"].lower()
    exceptions = fleet.http.get("/process/v1/exceptions", params={"owner": "sales_operations"}).json()
    assert run["id"] in [r["id"] for r in exceptions["items"]]
    assert fleet.psa_projects(MISSING_LEGAL_ENTITY_OPPORTUNITY_ID) == []

    fleet.salesforce_update("Opportunity", MISSING_LEGAL_ENTITY_OPPORTUNITY_ID, {"Legal_Entity__c": "US01"})
    replay = fleet.post(f"/process/v1/runs/{run['id']}/replay")
    assert replay.status_code == 202, replay.text
    done = fleet.run(run["id"], wait=WAIT)
    assert done["state"] == "completed", json.dumps(done, indent=1)
    fleet.assert_activated_once(done)
    exceptions = fleet.http.get("/process/v1/exceptions", params={"owner": "sales_operations"}).json()
    assert run["id"] not in [r["id"] for r in exceptions["items"]]


def test_a_cancelled_run_leaves_no_open_project_or_billing_schedule(fleet: Fleet) -> None:
    # Staffing fails for good, after the PSA project and the billing schedule exist: the run dead-letters.
    fleet.fault("kantata", kind="outage", path_pattern=r"workspace_resources")
    try:
        run = fleet.activate(READY_RETAINER_OPPORTUNITY_ID).json()
        assert run["state"] == "dead_letter", json.dumps(run, indent=1)
        assert run["issue"]["step"] == "psa.raise_staffing_demand"
        outcomes = [s["outcome"] for s in _steps(run, "psa.raise_staffing_demand")]
        assert outcomes == ["retried", "retried", "retried", "failed"]
        dead = fleet.http.get("/process/v1/dead-letters").json()
        assert run["id"] in [r["id"] for r in dead["items"]]
        cancel = fleet.post(f"/process/v1/runs/{run['id']}/cancel")
        assert cancel.status_code == 202, cancel.text
        done = fleet.run(run["id"], wait=WAIT)
    finally:
        fleet.clear_faults("kantata")
    assert done["state"] == "cancelled", json.dumps(done, indent=1)
    assert [s["name"] for s in done["steps"] if s["outcome"] == "compensated"] == [
        "compensate.erp.void_billing_schedule",
        "compensate.psa.close_project",
        "compensate.crm.revert_write_back",
    ]
    schedules = fleet.records(
        "netsuite", "billingSchedule", externalId=f"{READY_RETAINER_OPPORTUNITY_ID}.billing"
    )
    assert len(schedules) == 1
    assert schedules[0]["isInactive"] is True, schedules[0]  # NetSuite's void
    (workspace,) = fleet.psa_projects(READY_RETAINER_OPPORTUNITY_ID)
    assert workspace["archived"] is True, workspace
    opportunity = fleet.records("salesforce", "Opportunity", Id=READY_RETAINER_OPPORTUNITY_ID)[0]
    assert opportunity["Activation_Status__c"] == "Cancelled"
    assert fleet.post(f"/process/v1/runs/{run['id']}/cancel").status_code == 409


def _crm_event(event_id: str, opportunity_id: str, stage: str, commit_ms: int, sequence: int) -> bytes:
    body = {
        "replay_id": str(sequence),
        "event": {
            "id": event_id,
            "payload": {
                "ChangeEventHeader": {
                    "entityName": "Opportunity",
                    "recordIds": [opportunity_id],
                    "changeType": "UPDATE",
                    "changedFields": ["StageName", "IsWon"],
                    "commitTimestamp": commit_ms,
                    "transactionKey": uuid.uuid4().hex,
                    "sequenceNumber": 1,
                },
                "StageName": stage,
                "IsWon": stage == "Closed Won",
            },
        },
    }
    return json.dumps(body).encode()


def test_one_crm_event_delivered_three_times_out_of_order_starts_one_activation(fleet: Fleet) -> None:
    fleet.salesforce_update("Opportunity", OPEN_OPPORTUNITY_ID, {"StageName": "Closed Won"})
    now = int(time.time() * 1000)
    negotiation = _crm_event(str(uuid.uuid4()), OPEN_OPPORTUNITY_ID, "Negotiation/Review", now - 60_000, 1)
    won = _crm_event(str(uuid.uuid4()), OPEN_OPPORTUNITY_ID, "Closed Won", now, 2)
    receipts = []
    # The relay redelivers the win and delivers the older change last.
    for body in (won, won, negotiation, won):
        response = httpx.post(
            f"{fleet.server.base}/process/v1/crm-events",
            content=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign_crm_event(body, CRM_EVENTS_SECRET),
            },
        )
        assert response.status_code == 202, response.text
        receipts.append(response.json())
    assert [r["outcome"] for r in receipts] == ["started", "duplicate", "ignored", "duplicate"]
    run_id = receipts[0]["runs"][0]["run_id"]
    run = fleet.run(run_id, wait=WAIT)
    assert run["state"] == "completed", json.dumps(run, indent=1)
    assert run["trigger"].startswith("crm-event:")
    fleet.assert_activated_once(run)
    runs = fleet.http.get("/process/v1/runs", params={"workflow": "project_activation", "limit": 200}).json()
    assert [r["id"] for r in runs["items"] if r["subject"] == OPEN_OPPORTUNITY_ID] == [run_id]

    unsigned = httpx.post(
        f"{fleet.server.base}/process/v1/crm-events",
        content=won,
        headers={"Content-Type": "application/json"},
    )
    assert unsigned.status_code == 401
