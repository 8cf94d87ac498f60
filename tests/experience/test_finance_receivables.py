"""The finance view's receivables and invoice lineage against both ERP sandboxes, with billing data made
the way the billing tests make it (see ``test_finance``): the totals are the ERPs' own open balances to the
cent, read from the sandboxes' stores; an invoice leads back to its hours, project, deal and billing run;
the rows are named from the invoices, and without the ERP the view is a 503 problem."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace
from typing import Any

from contracts.models.common import Money
from contracts.models.crm import Customer
from contracts.models.finance import Invoice, InvoiceStatus
from experience_apis.compose import Composed, _Outcome
from experience_apis.finance import _Invoices, _receivable_names, _ReceivablesAsk
from experience_apis.paging import Paging
from sandboxes.salesforce.data import READY_OPPORTUNITY_ID
from tests.experience.test_finance import (
    FINANCE,
    NETSUITE_ENTITIES,
    _clear_faults,
    _every_row,
    _fault,
    _money,
    _seed_both_entities,
    _view,
    gw,
)
from tests.process.test_billing_runs import PERIOD, _child_id, _done, _project, _settled, _start, _until

__all__ = ["gw"]


# --- receivables and lineage ---------------------------------------------------------------------------


def _open_in_sandboxes(gw: Any) -> dict[tuple[str, str], tuple[Decimal, int]]:
    """(legal entity, currency) -> (open balance, open invoices), summed from the ERP sandboxes' stores."""
    found: dict[tuple[str, str], tuple[Decimal, int]] = {}

    def add(key: tuple[str, str], amount: Decimal) -> None:
        total, count = found.get(key, (Decimal(0), 0))
        found[key] = (total + amount, count + 1)

    netsuite = gw.sandbox_state("netsuite").records
    currencies = {cid: c["symbol"] for cid, c in netsuite["currency"].items()}
    for invoice in netsuite["invoice"].values():
        remaining = _money(invoice["amountRemaining"] or 0)
        if invoice["status"] == "A" and remaining > 0:  # Open (partly paid or not); not pending or voided
            add((NETSUITE_ENTITIES[invoice["subsidiary"]], currencies[invoice["currency"]]), remaining)
    for invoice in gw.sandbox_state("business-central").records["salesInvoices"].values():
        remaining = _money(invoice["remainingAmount"])
        if invoice["status"] == "Open" and remaining > 0:
            add(("DE01", invoice["currencyCode"] or "EUR"), remaining)
    return found


async def test_receivables_reconcile_to_both_erps_and_an_invoice_leads_back_to_its_work(gw: Any) -> None:
    tm, ids, fixed, milestones = await _seed_both_entities(gw)
    us = await _start(gw, legal_entity="US01", project_ids=[tm])
    de = await _start(gw, legal_entity="DE01", project_ids=[fixed])
    us_child = _project(await _until(gw, us["run"]["id"], _done), tm)
    de_child = _project(await _until(gw, de["run"]["id"], _settled(_child_id(fixed))), fixed)
    assert de_child["state"] == "completed", de_child
    de_invoice_id = de_child["result"]["erp_invoice_id"]
    assert de_invoice_id.startswith("business_central:")

    body = await _view(gw, "/receivables", limit=200)
    totals = {(t["legal_entity"], t["currency"]): t for t in body["by_legal_entity"]}
    expected = _open_in_sandboxes(gw)
    assert {k: (Decimal(t["open"]), t["invoices"]) for k, t in totals.items() if t["invoices"]} == expected
    assert body["skipped_invoices"] == 0
    for total in totals.values():
        assert sum(Decimal(v) for v in total["aging"].values()) == Decimal(total["open"])
        if total["dso"] is not None:
            dso = Decimal(total["open"]) / Decimal(total["invoiced_last_90_days"]) * 90
            assert Decimal(total["dso"]) == dso.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    # Both new invoices were issued today: invoiced in the last 90 days of their entity, and current.
    assert (
        Decimal(totals[("DE01", "EUR")]["invoiced_last_90_days"]) >= Decimal(de_child["result"]["total"]) > 0
    )
    assert (
        Decimal(totals[("US01", "USD")]["invoiced_last_90_days"]) >= Decimal(us_child["result"]["total"]) > 0
    )

    # The rows, every page, are the totals again; the Business Central customer's row is DE01's.
    rows = await _every_row(gw, "/receivables", limit=25)
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in rows:
        sums[(r["legal_entity"], r["currency"])] += Decimal(r["open"])
    assert {k: Decimal(t["open"]) for k, t in totals.items() if t["invoices"]} == dict(sums)
    assert any(r["customer_id"].startswith("business_central:") and r["legal_entity"] == "DE01" for r in rows)
    assert all(r["customer_name"] for r in rows)
    # Filters: one legal entity, one currency.
    de_only = await _view(gw, "/receivables", legal_entity="DE01", currency="EUR", limit=200)
    assert {(t["legal_entity"], t["currency"]) for t in de_only["by_legal_entity"]} == {("DE01", "EUR")}
    assert de_only["by_legal_entity"][0]["open"] == totals[("DE01", "EUR")]["open"]

    # The US01 invoice's lineage: its lines' hours and expense in the PSA, the PSA invoice, the project,
    # the deal and the billing run that made it.
    lineage = await _view(gw, f"/invoices/{us_child['result']['erp_invoice_id']}")
    assert lineage["billing_key"] == f"bill:{tm}:{PERIOD}"
    items = [i for line in lineage["lines"]["lines"] for i in line["items"]]
    assert sorted(i["source_id"] for i in items) == sorted(
        [*(f"time:{e}" for e in ids[:3]), f"expense:{ids[3]}"]
    )
    assert all(i["found"] for i in items)
    assert {i["time_entry"]["id"] for i in items if i["kind"] == "time"} == set(ids[:3])
    assert lineage["psa_invoice"]["data"]["id"] == us_child["result"]["psa_invoice_id"]
    assert lineage["project"]["data"]["id"] == tm
    assert lineage["deal"]["data"]["id"] == READY_OPPORTUNITY_ID
    run = lineage["billing_run"]["data"]
    assert (run["project_run"]["id"], run["billing_run"]["id"]) == (_child_id(tm), us["run"]["id"])
    assert lineage["payments"] == {"status": "ok"}  # none yet

    # The DE01 invoice, in Business Central: its line bills the milestone.
    de_lineage = await _view(gw, f"/invoices/{de_invoice_id}")
    (milestone,) = [i for line in de_lineage["lines"]["lines"] for i in line["items"]]
    assert (milestone["kind"], milestone["milestone"]["id"]) == ("milestone", milestones[0])
    assert de_lineage["billing_run"]["data"]["billing_run"]["id"] == de["run"]["id"]

    # The CRM down: the deal is unavailable, said so; the rest of the lineage stands.
    await _fault(gw, "salesforce", kind="outage")
    partial = await _view(gw, f"/invoices/{us_child['result']['erp_invoice_id']}")
    assert partial["deal"]["status"] == "unavailable"
    assert partial["deal"]["error"]["code"] == "vendor-unavailable"
    assert partial["deal"]["error"]["source"] == "system:crm.opportunities"
    assert partial["project"]["status"] == partial["lines"]["status"] == "ok"
    await _clear_faults(gw, "salesforce")

    # The PSA's projects down: the lines' items are read under the key's project all the same, but a
    # line's milestone is the project's, so the lines say they need it; the PSA invoice stands.
    await _fault(gw, "kantata", kind="outage", path_pattern=r"/workspaces/")
    no_project = await _view(gw, f"/invoices/{us_child['result']['erp_invoice_id']}")
    assert no_project["project"]["status"] == "unavailable"
    assert no_project["lines"]["status"] == "unavailable"
    assert no_project["lines"]["error"]["code"] == "source-unavailable"
    assert no_project["lines"]["error"]["source"] == "system:psa.projects"
    assert no_project["deal"]["status"] == "unavailable"
    assert no_project["psa_invoice"]["status"] == "ok"
    await _clear_faults(gw, "kantata")


async def test_an_invoice_no_run_made_still_answers_and_an_unknown_one_is_404(gw: Any) -> None:
    seeded = next(iter(gw.sandbox_state("netsuite").records["invoice"]))
    lineage = await _view(gw, f"/invoices/{seeded}")
    assert lineage["invoice"]["id"] == seeded
    assert lineage["invoice"]["legal_entity"] in NETSUITE_ENTITIES.values()
    assert lineage["billing_key"] is None
    for section in ("lines", "psa_invoice", "project", "deal", "billing_run"):
        assert lineage[section] == {"status": "not_applicable"}, section
    assert lineage["payments"]["status"] == "ok"
    problem = await _view(gw, "/invoices/99999999", status=404)
    assert problem["code"] == "not-found"


def _customer_names_in_sandboxes(gw: Any) -> dict[str, str]:
    """Customer id (as the system tier gives it) -> name, from the ERP sandboxes' stores: NetSuite's company
    name (else its entity id), Business Central's display name."""
    names = {
        cid: c.get("companyName") or c["entityId"]
        for cid, c in gw.sandbox_state("netsuite").records["customer"].items()
    }
    for cid, customer in gw.sandbox_state("business-central").records["customers"].items():
        names[f"business_central:{cid}"] = customer["displayName"]
    return names


async def test_receivables_name_their_customers_from_the_invoices_and_without_the_erp_are_503(
    gw: Any,
) -> None:
    # The ERP's customers are down (the record reads and the SuiteQL query of customers by id): the names
    # come with the invoices (NetSuite's invoice listing, Business Central's salesInvoices), so the rows
    # are named all the same, and no customer read is needed.
    await _fault(gw, "netsuite", kind="error", status=503, method="GET", path_pattern="/record/v1/customer/")
    await _fault(
        gw,
        "netsuite",
        kind="error",
        status=503,
        method="POST",
        path_pattern="/query/v1/suiteql",
        body_pattern=r"FROM customer WHERE id IN \(",
    )
    body = await _view(gw, "/receivables", limit=200)
    assert body["customer_names"]["status"] == "ok"
    rows = body["rows"]["items"]
    assert {r["legal_entity"] for r in rows} >= {"US01", "DE01"}
    names = _customer_names_in_sandboxes(gw)
    assert [r["customer_name"] for r in rows] == [names[r["customer_id"]] for r in rows]
    assert Decimal(body["by_legal_entity"][-1]["open"]) > 0
    await _clear_faults(gw, "netsuite")

    await _fault(gw, "netsuite", kind="outage")
    response = await gw.client.get(f"{FINANCE}/receivables", headers=gw.auth("experience:finance"))
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    problem = response.json()
    assert (problem["code"], problem["section"]) == ("source-unavailable", "invoices")
    await _clear_faults(gw, "netsuite")


async def test_a_customer_no_invoice_names_is_read_from_the_erp_alone() -> None:
    """An invoice without its customer's name (NetSuite's read of one invoice has none; an ERP may leave
    it empty): that customer's name, and only that one, is read from the ERPs' customers by id."""

    def invoice(number: str, customer: str, name: str | None) -> Invoice:
        amount = Money(amount=Decimal(100), currency="USD")
        return Invoice(
            id=number,
            number=number,
            customer_id=customer,
            status=InvoiceStatus.POSTED,
            currency="USD",
            total=amount,
            balance=amount,
            customer_name=name,
        )

    asked: list[list[str]] = []

    async def customers_by_id(ids: list[str]) -> list[Customer]:
        asked.append(ids)
        return [Customer(id=i, name=f"ERP name of {i}") for i in ids]

    ask = _ReceivablesAsk(
        clients=SimpleNamespace(system=SimpleNamespace(list_erp_customers_by_id=customers_by_id)),  # type: ignore[arg-type]  # a stub of the one call
        as_of=dt.date(2026, 12, 3),
        legal_entity=None,
        currency=None,
        customer_id=None,
        paging=Paging.of(("t",), limit=50, cursor=None),
    )
    items = [invoice("1", "10", "Acme"), invoice("2", "20", None), invoice("3", "10", None)]
    done = Composed(view="finance.receivables", outcomes={"invoices": _Outcome(value=_Invoices(items, 0))})

    assert await _receivable_names(ask, done) == {"10": "Acme", "20": "ERP name of 20"}
    assert asked == [["20"]]
