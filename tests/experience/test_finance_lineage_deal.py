"""The invoice lineage's deal, read by the project the billing key names alongside the project (not after
it), against the sandboxes, with billing data made the way the billing tests make it."""

from __future__ import annotations

from typing import Any

from sandboxes.salesforce.data import READY_OPPORTUNITY_ID
from tests.experience.test_finance import _view, gw
from tests.process.test_billing_runs import _done, _project, _seed_time_and_materials, _start, _until

__all__ = ["gw"]


async def test_the_lineage_reads_the_deal_by_the_billing_keys_project_not_after_the_project(gw: Any) -> None:
    tm, _ = await _seed_time_and_materials(gw)
    run = await _start(gw, legal_entity="US01", project_ids=[tm])
    child = _project(await _until(gw, run["run"]["id"], _done), tm)
    log = gw.sandbox_state("salesforce").request_log
    log.clear()
    lineage = await _view(gw, f"/invoices/{child['result']['erp_invoice_id']}")
    assert lineage["deal"]["status"] == "ok"
    assert lineage["deal"]["data"]["id"] == READY_OPPORTUNITY_ID
    assert lineage["deal"]["data"]["project_id"] == tm
    assert lineage["project"]["data"]["external_key"] == READY_OPPORTUNITY_ID
    # The deal that carries the project's id, in one round of queries; not its record read by id once
    # the project had named it.
    assert not [e.path for e in log if "/sobjects/Opportunity/" in e.path]
