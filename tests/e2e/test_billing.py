"""Billing runs end to end (issue 11): `stratum serve` (HTTP, no workflows of its own) and two
`stratum worker` processes sharing runs through a private PostgreSQL database, gateway state and events
through a real Redis, the vendor sandboxes reached over HTTP, as in tests/e2e/test_workflows.py. Work is
entered as a delivery team would (time booked as a role through the Kantata sandbox's API, approved there; a
rate added to the deal's rate card through the Salesforce sandbox's REST API), and every "exactly one" is
read from the sandboxes' own stores.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sandboxes.kantata.data import DEMO_USER_ID
from sandboxes.netsuite import DEV_CERTIFICATE_ID, DEV_CLIENT_ID, dev_private_key_pem
from sandboxes.salesforce.data import READY_OPPORTUNITY_ID, READY_RETAINER_OPPORTUNITY_ID
from system_apis.erp.netsuite_auth import ASSERTION_TYPE, NetSuiteClientAssertionAuth
from tests.e2e.harness import Server, Worker

# Not test_workflows.py's db 13: the two files never share gateway state.
REDIS_DB_URL = "redis://127.0.0.1:6379/12"
WAIT = 60
BILLING = "/process/v1/billing-runs"
# The role the team books time as: Kantata names it by id on a time entry, the deal's rate card by name.
ROLE = "4202"
ROLE_NAME = "Project Manager"
KANTATA_AUTH = {"Authorization": "Bearer stratum-kantata-sandbox-token"}


def _last_month() -> str:
    first = dt.datetime.now(dt.UTC).date().replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


PERIOD = _last_month()  # a month that is over: a billing run refuses the current one


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, database: str, redis_url: str) -> Iterator[Fleet]:
    import redis

    redis.Redis.from_url(REDIS_DB_URL).flushdb()
    fleet = Fleet(tmp_path_factory.mktemp("billing"), database)
    yield fleet
    fleet.stop()


class Fleet:
    """One gateway serving HTTP and the sandboxes, two workers running the billing workflows."""

    def __init__(self, tmp: Path, database: str) -> None:
        env = {
            "STRATUM_REDIS_URL": REDIS_DB_URL,
            "STRATUM_WORKFLOWS__DATABASE_URL": database,
            "STRATUM_WORKFLOWS__RUN_IN_PROCESS": "false",
            "STRATUM_WORKFLOWS__STEP_MAX_ATTEMPTS": "6",
            "STRATUM_WORKFLOWS__STEP_BACKOFF_BASE_SECONDS": "0.2",
            "STRATUM_WORKFLOWS__STEP_BACKOFF_MAX_SECONDS": "1",
            "STRATUM_WORKFLOWS__HEARTBEAT_SECONDS": "0.5",
            "STRATUM_WORKFLOWS__WORKER_TIMEOUT_SECONDS": "3",
            "STRATUM_WORKFLOWS__POLL_INTERVAL_SECONDS": "0.2",
            "STRATUM_ERP_VENDOR": "netsuite",
            "STRATUM_NETSUITE__BREAKER_FAILURE_THRESHOLD": "0",
            "STRATUM_KANTATA__BREAKER_FAILURE_THRESHOLD": "0",
            "STRATUM_NETSUITE__TIMEOUT_SECONDS": "2",
            "STRATUM_KANTATA__TIMEOUT_SECONDS": "2",
        }
        self.server = Server(tmp, name="server", **env)
        # One after the other: two workers creating the engine's tables in a fresh database at the same
        # moment can collide (CREATE TABLE IF NOT EXISTS is not atomic in PostgreSQL), and one would exit.
        self.workers: list[Worker] = []
        for i in (1, 2):
            self.workers.append(self.worker(f"worker-{i}"))
            _registered(database, len(self.workers))
        assert all(w.process.poll() is None for w in self.workers)
        secret = self.server.cli("token", "--client", "stratum-demo", "--show-secret")
        token = httpx.post(
            f"{self.server.base}/oauth/token",
            auth=("stratum-demo", secret),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        self.http = httpx.Client(
            base_url=self.server.base, headers={"Authorization": f"Bearer {token}"}, timeout=WAIT + 10
        )

    def worker(self, name: str) -> Worker:
        return Worker(self.server, name, STRATUM_SYSTEM_URL=self.server.base)

    def stop(self) -> None:
        self.http.close()
        for worker in self.workers:
            worker.stop()
        self.server.stop()

    # -- process tier ----------------------------------------------------------------------------------

    def post(self, path: str, body: Any = None, **headers: str) -> httpx.Response:
        return self.http.post(path, json=body, headers={"Idempotency-Key": uuid.uuid4().hex, **headers})

    def activate(self, opportunity_id: str) -> str:
        """The won deal activated (the PSA project, the ERP customer and project): its PSA project id."""
        response = self.post(
            "/process/v1/project-activations", {"opportunity_id": opportunity_id}, Prefer=f"wait={WAIT}"
        )
        run = response.json()
        assert run["state"] == "completed", json.dumps(run, indent=1)
        project: str = run["result"]["psa_project_id"]
        return project

    def bill(self, project_id: str) -> str:
        response = self.post(BILLING, {"legal_entity": "US01", "period": PERIOD, "project_ids": [project_id]})
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run"]["id"]
        return run_id

    def billed(self, run_id: str, project_id: str) -> dict[str, Any]:
        """The billing run once done, and its project run (``bill-{project}-{period}``)."""
        deadline = time.monotonic() + WAIT
        while True:
            response = self.http.get(f"{BILLING}/{run_id}")
            assert response.status_code == 200, response.text
            view = response.json()
            if view["run"]["state"] in ("completed", "failed", "cancelled", "exception", "dead_letter"):
                break
            assert time.monotonic() < deadline, json.dumps(view, indent=1)
            time.sleep(0.2)
        assert view["run"]["state"] == "completed", json.dumps(view, indent=1)
        (child,) = [r for r in view["projects"] if r["id"] == f"bill-{project_id}-{PERIOD}"]
        assert child["state"] == "completed", json.dumps(child, indent=1)
        return dict(child)

    def erp_invoice(self, invoice_id: str) -> dict[str, Any]:
        response = self.http.get(f"/system/v1/erp/invoices/{invoice_id}")
        assert response.status_code == 200, response.text
        invoice: dict[str, Any] = response.json()
        return invoice

    # -- the vendors, as they are --------------------------------------------------------------------------

    def records(self, vendor: str, record_type: str, **where: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/sandboxes/{vendor}/__sandbox/records/{record_type}", params=where)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def fault(self, vendor: str, **rule: Any) -> None:
        response = self.http.post(f"/sandboxes/{vendor}/__sandbox/faults", json=rule)
        assert response.status_code == 201, response.text

    def clear_faults(self, vendor: str) -> None:
        assert self.http.delete(f"/sandboxes/{vendor}/__sandbox/faults").status_code == 204

    def book_time(self, project_id: str, day: int, minutes: int) -> str:
        """A time entry booked as ``ROLE`` through Kantata's API, then approved (the sandbox's approval)."""
        body = {
            "time_entry": {
                "workspace_id": project_id,
                "date_performed": f"{PERIOD}-{day:02d}",
                "time_in_minutes": minutes,
                "user_id": DEMO_USER_ID,
                "role_id": ROLE,
                "billable": True,
            }
        }
        response = self.http.post(
            "/sandboxes/kantata/api/v1/time_entries.json", json=body, headers=KANTATA_AUTH
        )
        assert response.status_code == 200, response.text
        created = response.json()
        entry_id = str(created["results"][0]["id"])
        approved = self.http.post(
            "/sandboxes/kantata/__sandbox/time_entries/approve", json={"time_entry_ids": [entry_id]}
        )
        assert approved.status_code == 200, approved.text
        return entry_id

    def add_rate(self, opportunity_id: str, rate: str) -> None:
        """Sales operations add the role's rate to the deal's rate card (Salesforce REST API)."""
        base = "/sandboxes/salesforce"
        token = self.http.post(
            f"{base}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "stratum-sandbox",
                "client_secret": "stratum-sandbox-secret",
            },
        ).json()["access_token"]
        response = self.http.post(
            f"{base}/services/data/v61.0/sobjects/Rate_Card_Line__c",
            json={
                "Opportunity__c": opportunity_id,
                "Role__c": ROLE_NAME,
                "Rate__c": float(rate),
                "Unit__c": "Hour",
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.text

    def erp_invoices(self, key: str) -> list[dict[str, Any]]:
        """NetSuite's invoices under the billing key (its ``externalId``)."""
        return self.records("netsuite", "invoice", externalId=key)

    def psa_invoices(self, project_id: str) -> list[dict[str, Any]]:
        return [
            i
            for i in self.records("kantata", "invoices")
            if str(project_id) in [str(w) for w in i.get("workspace_ids", [i.get("workspace_id")])]
        ]

    def invoiced(self, entry_ids: list[str]) -> dict[str, bool]:
        entries = {str(e["id"]): e for e in self.records("kantata", "time_entries")}
        return {e: bool(entries[e]["is_invoiced"]) for e in entry_ids}

    def crm_statuses(self, erp_invoice_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records("salesforce", "Stratum_Invoice__c")
            if r.get("ERP_Invoice_Id__c") == erp_invoice_id
        ]

    def netsuite_payment(self, invoice_id: str, customer_id: str, amount: str) -> None:
        """Finance enters a customer payment in NetSuite (REST record API: customerPayment with apply),
        signed in as the integration is (client credentials with a JWT client assertion)."""
        rest = f"{self.server.base}/sandboxes/netsuite/services/rest"
        token_url = f"{rest}/auth/oauth2/v1/token"
        assertion = NetSuiteClientAssertionAuth(
            token_url=token_url,
            client_id=DEV_CLIENT_ID,
            certificate_id=DEV_CERTIFICATE_ID,
            private_key_pem=dev_private_key_pem(),
        ).client_assertion()
        token = httpx.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )
        assert token.status_code == 200, token.text
        response = httpx.post(
            f"{rest}/record/v1/customerPayment",
            json={
                "customer": {"id": customer_id},
                "payment": float(amount),  # the vendor's JSON: a number
                "apply": {"items": [{"doc": {"id": invoice_id}, "apply": True, "amount": float(amount)}]},
            },
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        assert response.status_code == 204, response.text

    def sync_invoice_status(self) -> dict[str, Any]:
        response = self.post("/process/v1/invoice-status-syncs", {}, Prefer=f"wait={WAIT}")
        assert response.status_code == 202, response.text
        run: dict[str, Any] = response.json()
        assert run["state"] == "completed", json.dumps(run, indent=1)
        return run

    def psa_payment_notes(self, psa_invoice_id: str) -> list[str]:
        """The partial payments noted on the PSA invoice (external references to the ERP payment)."""
        return sorted(
            str(r["service_model_ref"])
            for r in self.records("kantata", "external_references")
            if r.get("service_model") == "Payment" and str(r.get("subject_id")) == psa_invoice_id
        )

    def psa_paid_in_full(self, psa_invoice_id: str) -> int:
        payments = self.records("kantata", "external_payments")
        return len([p for p in payments if str(p.get("invoice_id")) == psa_invoice_id])

    def events(self, type_: str, subject: str) -> list[dict[str, Any]]:
        found, cursor = [], None
        while True:
            params: dict[str, Any] = {"type": type_, "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = self.http.get("/process/v1/events", params=params).json()
            found += [e for e in page["items"] if e["subject"] == subject]
            if not page["items"]:
                return found
            cursor = page["next_cursor"]

    def assert_billed_once(self, project_id: str, result: dict[str, Any]) -> Counter[str]:
        """One ERP invoice and one PSA invoice for the project and period, each item on one line: the
        invoice's source ids (counted)."""
        key = f"bill:{project_id}:{PERIOD}"
        assert result["billing_key"] == key
        assert len(self.erp_invoices(key)) == 1, self.erp_invoices(key)
        psa = self.psa_invoices(project_id)
        assert [str(i["id"]) for i in psa] == [str(result["psa_invoice_id"])], psa
        invoice = self.erp_invoice(result["erp_invoice_id"])
        assert invoice["external_key"] == key
        assert Decimal(invoice["total"]["amount"]) == sum(
            Decimal(line["amount"]) for line in invoice["lines"]
        )
        assert Decimal(invoice["total"]["amount"]) == Decimal(result["total"])
        traced = Counter(s for line in invoice["lines"] for s in line.get("source_ids", []))
        assert all(count == 1 for count in traced.values()), traced
        assert len(self.crm_statuses(result["erp_invoice_id"])) == 1
        return traced


def _registered(database: str, count: int) -> None:
    """Wait until ``count`` workers have registered in the engine's ``stratum_workers`` table."""
    deadline = time.monotonic() + 30
    with psycopg.connect(database, autocommit=True) as conn:
        while True:
            try:
                row = conn.execute("SELECT count(*) FROM stratum_workers").fetchone()
                if row and row[0] >= count:
                    return
            except psycopg.errors.UndefinedTable:
                pass
            assert time.monotonic() < deadline, f"{count} workers did not register"
            time.sleep(0.1)


def _holder_pid(database: str, run_id: str, *, running: bool = True) -> int:
    """The pid of the worker that holds (or, ``running=False``, last held) the run; executor ids are
    host-pid-random (as in test_workflows.py)."""
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


class Month:
    """The time-and-materials deal's month, billed by two overlapping billing runs started at once."""

    def __init__(self, project: str, entries: list[str], results: list[dict[str, Any]]) -> None:
        self.project, self.entries, self.results = project, entries, results
        self.result = results[0]


@pytest.fixture(scope="module")
def month(fleet: Fleet) -> Month:
    project = fleet.activate(READY_OPPORTUNITY_ID)
    fleet.add_rate(READY_OPPORTUNITY_ID, "210")
    entries = [fleet.book_time(project, day, 450) for day in (3, 4, 5)]
    # Two billing runs for the same project and period, started at the same moment (two threads, two
    # Idempotency-Keys) before either has billed anything.
    started: list[str] = []
    barrier = threading.Barrier(2)

    def start() -> None:
        barrier.wait()
        started.append(fleet.bill(project))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(started)) == 2, started
    return Month(project, entries, [fleet.billed(run_id, project)["result"] for run_id in started])


def test_a_time_and_materials_month_is_invoiced_once_however_many_runs_ask(
    fleet: Fleet, month: Month
) -> None:
    project, entries, result = month.project, month.entries, month.result
    traced = fleet.assert_billed_once(project, result)
    # Every line traces to the approved entries, each entry to one line: 3 x 7.5 h x 210.
    assert traced == Counter(f"time:{e}" for e in entries)
    assert Decimal(result["total"]) == Decimal("4725.00")
    assert fleet.invoiced(entries) == dict.fromkeys(entries, True)
    # The overlapping run reports the same invoice: it attached to the project run instead of billing.
    assert [r["erp_invoice_id"] for r in month.results] == [result["erp_invoice_id"]] * 2

    # The same billing run started again later (another Idempotency-Key): nothing is billed again.
    again = fleet.billed(fleet.bill(project), project)["result"]
    assert again["erp_invoice_id"] == result["erp_invoice_id"]
    assert fleet.assert_billed_once(project, again) == traced
    assert fleet.invoiced(entries) == dict.fromkeys(entries, True)


def test_a_worker_killed_mid_run_leaves_one_invoice_with_every_item_once(fleet: Fleet, database: str) -> None:
    project = fleet.activate(READY_RETAINER_OPPORTUNITY_ID)
    fleet.add_rate(READY_RETAINER_OPPORTUNITY_ID, "210")
    entries = [fleet.book_time(project, day, 120) for day in (10, 11)]
    # Slow the PSA invoice (the items' claim): the worker dies while its POST is in flight, and Kantata
    # still makes the invoice after the answer has nobody to go to.
    fleet.fault("kantata", kind="latency", latency_ms=1500, method="POST", path_pattern=r"/invoices", times=1)
    try:
        run_id = fleet.bill(project)
        holder = _holder_pid(database, f"bill-{project}-{PERIOD}")
        victim = next(w for w in fleet.workers if w.pid == holder)
        deadline = time.monotonic() + WAIT
        while fleet.http.get("/sandboxes/kantata/__sandbox/faults").json()["faults"]:
            assert time.monotonic() < deadline, "the run never wrote its PSA invoice"
            time.sleep(0.02)
        victim.kill()
    finally:
        fleet.clear_faults("kantata")
    result = fleet.billed(run_id, project)["result"]
    survivor = next(w for w in fleet.workers if w is not victim)
    assert survivor.process.poll() is None, "the other worker is not running"
    assert _holder_pid(database, f"bill-{project}-{PERIOD}", running=False) == survivor.pid
    traced = fleet.assert_billed_once(project, result)
    assert f"retainer:{project}:{PERIOD}" in traced
    assert fleet.invoiced(entries) == dict.fromkeys(entries, True)
    # Keep two workers for the tests after this one.
    fleet.workers = [survivor, fleet.worker("worker-3")]


def test_a_partial_then_a_full_payment_in_netsuite_reach_the_crm_and_the_psa_once_each(
    fleet: Fleet, month: Month
) -> None:
    erp_id, psa_id = month.result["erp_invoice_id"], str(month.result["psa_invoice_id"])
    customer = fleet.erp_invoice(erp_id)["customer_id"]

    fleet.netsuite_payment(erp_id, customer, "1725.00")
    fleet.sync_invoice_status()
    (record,) = fleet.crm_statuses(erp_id)
    assert (record["Status__c"], Decimal(str(record["Balance__c"]))) == ("Partially Paid", Decimal("3000"))
    # Kantata records only full payments: the partial one is a note on the PSA invoice.
    assert len(fleet.psa_payment_notes(psa_id)) == 1
    assert fleet.psa_paid_in_full(psa_id) == 0

    fleet.netsuite_payment(erp_id, customer, "3000.00")
    fleet.sync_invoice_status()
    (record,) = fleet.crm_statuses(erp_id)
    assert (record["Status__c"], Decimal(str(record["Balance__c"]))) == ("Paid", Decimal("0"))
    notes = fleet.psa_payment_notes(psa_id)
    assert len(notes) == len(set(notes)) == 2
    assert fleet.psa_paid_in_full(psa_id) == 1

    # Synced again (the overlap re-reads the same changes): nothing reaches either system twice.
    assert fleet.sync_invoice_status()["result"]["applied"] == []
    assert len(fleet.psa_payment_notes(psa_id)) == 2
    assert fleet.psa_paid_in_full(psa_id) == 1
    assert len(fleet.crm_statuses(erp_id)) == 1
    assert [len(fleet.events(t, erp_id)) for t in ("invoice.partially_paid", "invoice.paid")] == [1, 1]
