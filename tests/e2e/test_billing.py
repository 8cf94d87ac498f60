"""Billing runs end to end (issue 11): `stratum serve` (HTTP, no workflows of its own) and two
`stratum worker` processes sharing runs through a private PostgreSQL database, gateway state and events
through a real Redis, the vendor sandboxes reached over HTTP, as in tests/e2e/test_workflows.py. Work is
entered as a delivery team would (time booked as a role through the Kantata sandbox's API, approved there; a
rate added to the deal's rate card through the Salesforce sandbox's REST API), and every "exactly one" is
read from the sandboxes' own stores.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from sandboxes.salesforce.data import READY_OPPORTUNITY_ID, READY_RETAINER_OPPORTUNITY_ID
from tests.e2e.billing_fleet import PERIOD, WAIT, Fleet

# Not test_workflows.py's db 13 nor test_billing_models.py's 11: the files never share gateway state.
REDIS_DB_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, database: str, redis_url: str) -> Iterator[Fleet]:
    import redis

    redis.Redis.from_url(REDIS_DB_URL).flushdb()
    fleet = Fleet(tmp_path_factory.mktemp("billing"), database, REDIS_DB_URL)
    yield fleet
    fleet.stop()


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
