"""The finance view's receivables and invoice lineage against both ERP sandboxes, with billing data made
the way the billing tests make it (see ``test_finance``): the totals are the ERPs' own open balances to the
cent, read from the sandboxes' stores; an invoice leads back to its hours, project, deal and billing run;
without customer names the view still answers, without the ERP it is a 503 problem."""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

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


async def test_receivables_without_customer_names_still_answer_and_without_the_erp_are_503(gw: Any) -> None:
    await _fault(gw, "netsuite", kind="error", status=503, method="GET", path_pattern="/record/v1/customer/")
    # The names are read in one SuiteQL query of the page's customers: that query fails too (the
    # invoices' SuiteQL does not).
    await _fault(
        gw,
        "netsuite",
        kind="error",
        status=503,
        method="POST",
        path_pattern="/query/v1/suiteql",
        body_pattern=r"FROM customer WHERE id IN \(",
    )
    body = await _view(gw, "/receivables", legal_entity="US01")
    assert body["customer_names"]["status"] == "unavailable"
    assert body["customer_names"]["error"]["source"] == "system:erp.customers"
    assert body["rows"]["items"]
    assert all("customer_name" not in r or r["customer_name"] is None for r in body["rows"]["items"])
    assert Decimal(body["by_legal_entity"][0]["open"]) == _open_in_sandboxes(gw)[("US01", "USD")][0]
    await _clear_faults(gw, "netsuite")

    await _fault(gw, "netsuite", kind="outage")
    response = await gw.client.get(f"{FINANCE}/receivables", headers=gw.auth("experience:finance"))
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    problem = response.json()
    assert (problem["code"], problem["section"]) == ("source-unavailable", "invoices")
    await _clear_faults(gw, "netsuite")
