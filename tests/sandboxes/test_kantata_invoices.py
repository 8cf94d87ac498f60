"""The Kantata sandbox's invoices and external payments on the wire, as Kantata's API reference documents
them (developer.kantata.com/kantata/specification): "Creating a new Invoice" (POST /invoices with the items it
bills), "Updating an existing Invoice" (``draft: false`` issues it), "Cancel an existing invoice" (PUT
/invoices/{id}/cancel), "Deleting an existing Invoice" (drafts), and "Creating a new External Payment" (with
``invoice_id`` it pays the whole invoice, only a single-project, non-draft, pending one; ``amount_in_cents``
is overridden)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandboxes.kantata import KantataSandboxSettings, create_kantata_sandbox
from sandboxes.kantata.data import DEMO_WORKSPACE_ID, EUR_WORKSPACE_ID, INTERNAL_WORKSPACE_ID

API = "/api/v1"
HEADERS = {"Authorization": "Bearer stratum-kantata-sandbox-token"}


@pytest.fixture
async def kantata() -> AsyncIterator[httpx.AsyncClient]:
    app = create_kantata_sandbox(KantataSandboxSettings(requests_per_second=100_000))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://kantata.test",
        headers=HEADERS,
    ) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def _records(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [body[ref["key"]][ref["id"]] for ref in body["results"]]


def _one(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    records = _records(response.json())
    assert len(records) == 1
    return records[0]


async def _unbilled(kantata: httpx.AsyncClient, collection: str, **filters: str) -> list[dict[str, Any]]:
    params = {
        "workspace_id": DEMO_WORKSPACE_ID,
        "approved": "true",
        "is_invoiced": "false",
        "per_page": "200",
    }
    response = await kantata.get(f"{API}/{collection}.json", params={**params, **filters})
    assert response.status_code == 200, response.text
    return _records(response.json())


async def _milestones(kantata: httpx.AsyncClient) -> list[dict[str, Any]]:
    params = {
        "workspace_id": DEMO_WORKSPACE_ID,
        "story_type": "milestone",
        "billable": "true",
        "state": "completed",
    }
    return _records((await kantata.get(f"{API}/stories.json", params=params)).json())


async def _create(kantata: httpx.AsyncClient, **invoice: Any) -> httpx.Response:
    body = {"workspace_id": DEMO_WORKSPACE_ID, "payment_schedule": 30, **invoice}
    return await kantata.post(f"{API}/invoices.json", json={"invoice": body})


async def test_the_seed_has_unbilled_time_expenses_and_a_completed_billable_milestone(
    kantata: httpx.AsyncClient,
) -> None:
    time = await _unbilled(kantata, "time_entries", billable="true")
    expenses = await _unbilled(kantata, "expenses", is_billable="true")
    milestones = await _milestones(kantata)
    assert time
    assert expenses
    assert [m["fixed_fee"] for m in milestones] == [True]
    assert all(not e["is_invoiced"] and e["approved"] and e["billable"] for e in time)
    invoiced = await kantata.get(
        f"{API}/time_entries.json", params={"workspace_id": DEMO_WORKSPACE_ID, "is_invoiced": "true"}
    )
    assert not {e["id"] for e in _records(invoiced.json())} & {e["id"] for e in time}


async def _billing_milestone(kantata: httpx.AsyncClient, story: dict[str, Any]) -> dict[str, Any]:
    """A billing milestone for a milestone story, as developer.kantata.com/kantata/specification/
    billing-milestones/create-billing-milestone takes one."""
    body = {
        "workspace_id": story["workspace_id"],
        "title": story["title"],
        "amount_in_cents": story["budget_estimate_in_cents"],
        "date_to_invoice": story["due_date"],
        "story_id": story["id"],
    }
    return _one(await kantata.post(f"{API}/billing_milestones.json", json={"billing_milestone": body}))


async def test_an_invoice_bills_its_items_and_marks_them_invoiced(kantata: httpx.AsyncClient) -> None:
    time = (await _unbilled(kantata, "time_entries", billable="true"))[:2]
    expense = (await _unbilled(kantata, "expenses", is_billable="true"))[:1]
    milestone = [await _billing_milestone(kantata, story) for story in await _milestones(kantata)]
    assert [(m["currency"], m["invoice_id"], m["invoice_ids"]) for m in milestone] == [("USD", None, [])]
    invoice = _one(
        await _create(
            kantata,
            time_entry_ids=[t["id"] for t in time],
            expense_ids=[int(e["id"]) for e in expense],  # ids as numbers too, as Kantata takes them
            billing_milestone_ids=[m["id"] for m in milestone],
            # AdditionalItem's attributes per mavenlink_gem's specification: notes, amount_in_cents, taxable.
            additional_items=[{"notes": "Retainer", "amount_in_cents": 50_000}],
            invoice_date="2026-03-01",
            suppress_emails=True,
            external_references_attributes=[
                {"service_name": "Stratum", "service_model": "Invoice", "service_model_ref": "bill:x:2026-02"}
            ],
        )
    )
    expected = (
        sum(-(-t["time_in_minutes"] * t["rate_in_cents"] // 60) for t in time)
        + sum(e["amount_in_cents"] for e in expense)
        + sum(m["amount_in_cents"] for m in milestone)
        + 50_000
    )
    assert invoice["price_in_cents"] == invoice["balance_in_cents"] == expected
    assert (invoice["status"], invoice["draft"], invoice["currency"]) == ("new", False, "USD")
    assert (invoice["invoice_date"], invoice["due_date"]) == ("2026-03-01", "2026-03-31")
    assert invoice["workspace_ids"] == [DEMO_WORKSPACE_ID]
    assert "suppress_emails" not in invoice
    for collection, ids in (
        ("time_entries", invoice["time_entry_ids"]),
        ("expenses", invoice["expense_ids"]),
    ):
        for item_id in ids:
            item = _one(await kantata.get(f"{API}/{collection}/{item_id}.json"))
            assert (item["is_invoiced"], item["invoice_id"]) == (True, invoice["id"])
    assert invoice["billing_milestone_ids"] == [m["id"] for m in milestone]
    billed = _one(await kantata.get(f"{API}/billing_milestones/{milestone[0]['id']}.json"))
    assert (billed["invoice_id"], billed["invoice_ids"]) == (invoice["id"], [invoice["id"]])
    with_fees = await kantata.get(
        f"{API}/invoices/{invoice['id']}.json", params={"include": "additional_items,billing_milestones"}
    )
    fees = with_fees.json()["additional_items"]
    assert [(fees[i]["notes"], fees[i]["amount_in_cents"]) for i in invoice["additional_item_ids"]] == [
        ("Retainer", 50_000)
    ]
    assert invoice["fixed_fee_item_ids"] == []
    assert "additional_items" not in invoice
    assert set(with_fees.json()["billing_milestones"]) == {m["id"] for m in milestone}
    refs = await kantata.get(
        f"{API}/external_references.json",
        params={"subject_type": "Invoice", "service_model_ref": "bill:x:2026-02"},
    )
    assert [r["subject_id"] for r in _records(refs.json())] == [invoice["id"]]
    events = await kantata.get(
        f"{API}/subscribed_events.json", params={"event_types": "time_entry:updated", "per_page": "200"}
    )
    assert {time[0]["id"], time[1]["id"]} <= {e["subject_id"] for e in _records(events.json())}


async def test_an_item_already_invoiced_is_refused_by_name_and_nothing_is_written(
    kantata: httpx.AsyncClient,
) -> None:
    time = (await _unbilled(kantata, "time_entries", billable="true"))[:2]
    _one(await _create(kantata, time_entry_ids=[time[0]["id"]]))
    count = len(kantata.app.state.sandbox.records["invoices"])  # type: ignore[attr-defined]
    refused = await _create(kantata, time_entry_ids=[time[1]["id"], time[0]["id"]])
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {
            "type": "validation",
            "message": f"Time entry {time[0]['id']} has already been invoiced",
            "field": "time_entry_ids",
        }
    ]
    assert len(kantata.app.state.sandbox.records["invoices"]) == count  # type: ignore[attr-defined]
    second = _one(await kantata.get(f"{API}/time_entries/{time[1]['id']}.json"))
    assert second["is_invoiced"] is False


@pytest.mark.parametrize(
    ("invoice", "field"),
    [
        ({"time_entry_ids": ["1100099999"]}, "time_entry_ids"),  # no such entry
        ({"payment_schedule": None}, "payment_schedule"),  # required
        ({}, "invoice"),  # bills nothing
        (
            {"workspace_id": EUR_WORKSPACE_ID, "time_entry_ids": "FROM_DEMO"},
            "time_entry_ids",
        ),  # other project
    ],
)
async def test_invalid_invoices_are_refused(
    kantata: httpx.AsyncClient, invoice: dict[str, Any], field: str
) -> None:
    if invoice.get("time_entry_ids") == "FROM_DEMO":
        invoice["time_entry_ids"] = [(await _unbilled(kantata, "time_entries", billable="true"))[0]["id"]]
    response = await _create(kantata, **invoice)
    assert response.status_code == 422, response.text
    assert field in {error["field"] for error in response.json()["errors"]}


async def test_non_billable_time_cannot_be_invoiced(kantata: httpx.AsyncClient) -> None:
    params = {"workspace_id": INTERNAL_WORKSPACE_ID, "billable": "false"}
    entry = _records((await kantata.get(f"{API}/time_entries.json", params=params)).json())[0]
    response = await _create(kantata, workspace_id=INTERNAL_WORKSPACE_ID, time_entry_ids=[entry["id"]])
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"] == f"Time entry {entry['id']} is not billable"


async def test_a_draft_is_issued_by_an_update_and_never_becomes_a_draft_again(
    kantata: httpx.AsyncClient,
) -> None:
    time = (await _unbilled(kantata, "time_entries", billable="true"))[:1]
    draft = _one(await _create(kantata, time_entry_ids=[time[0]["id"]], draft=True))
    assert draft["draft"] is True
    # A draft already holds its items.
    assert _one(await kantata.get(f"{API}/time_entries/{time[0]['id']}.json"))["is_invoiced"] is True
    issued = _one(await kantata.put(f"{API}/invoices/{draft['id']}.json", json={"invoice": {"draft": False}}))
    assert (issued["draft"], issued["status"]) == (False, "new")
    back = await kantata.put(f"{API}/invoices/{draft['id']}.json", json={"invoice": {"draft": True}})
    assert back.status_code == 422
    changed = await kantata.put(
        f"{API}/invoices/{draft['id']}.json", json={"invoice": {"time_entry_ids": []}}
    )
    assert changed.status_code == 422


async def test_cancel_makes_the_items_billable_again(kantata: httpx.AsyncClient) -> None:
    time = (await _unbilled(kantata, "time_entries", billable="true"))[:1]
    invoice = _one(await _create(kantata, time_entry_ids=[time[0]["id"]]))
    cancelled = _one(await kantata.put(f"{API}/invoices/{invoice['id']}/cancel.json"))
    assert (cancelled["status"], cancelled["balance_in_cents"]) == ("cancelled", 0)
    entry = _one(await kantata.get(f"{API}/time_entries/{time[0]['id']}.json"))
    assert (entry["is_invoiced"], entry["invoice_id"]) == (False, None)
    twice = await kantata.put(f"{API}/invoices/{invoice['id']}/cancel")
    assert twice.status_code == 422
    assert (await kantata.put(f"{API}/workspaces/{DEMO_WORKSPACE_ID}/cancel")).status_code == 404
    # Billable again: a new invoice may take the entry.
    assert (await _create(kantata, time_entry_ids=[time[0]["id"]])).status_code == 200


async def test_only_drafts_are_deleted_and_their_items_are_released(kantata: httpx.AsyncClient) -> None:
    time = (await _unbilled(kantata, "time_entries", billable="true"))[:2]
    issued = _one(await _create(kantata, time_entry_ids=[time[0]["id"]]))
    draft = _one(await _create(kantata, time_entry_ids=[time[1]["id"]], draft=True))
    assert (await kantata.delete(f"{API}/invoices/{issued['id']}.json")).status_code == 422
    assert (await kantata.delete(f"{API}/invoices/{draft['id']}.json")).status_code == 204
    assert (await kantata.get(f"{API}/invoices/{draft['id']}.json")).status_code == 404
    assert _one(await kantata.get(f"{API}/time_entries/{time[1]['id']}.json"))["is_invoiced"] is False


async def test_an_external_payment_with_an_invoice_pays_all_of_it(kantata: httpx.AsyncClient) -> None:
    time = (await _unbilled(kantata, "time_entries", billable="true"))[:1]
    invoice = _one(await _create(kantata, time_entry_ids=[time[0]["id"]]))
    body = {"workspace_id": DEMO_WORKSPACE_ID, "invoice_id": invoice["id"], "amount_in_cents": 1}
    payment = _one(await kantata.post(f"{API}/external_payments.json", json={"external_payment": body}))
    assert payment["amount_in_cents"] == invoice["price_in_cents"]  # amount_in_cents is overridden
    paid = _one(await kantata.get(f"{API}/invoices/{invoice['id']}.json"))
    assert (paid["status"], paid["balance_in_cents"]) == ("accepted payment", 0)
    again = await kantata.post(f"{API}/external_payments.json", json={"external_payment": body})
    assert again.status_code == 422  # no longer pending
    assert (await kantata.put(f"{API}/invoices/{invoice['id']}/cancel")).status_code == 422  # paid
    listed = await kantata.get(
        f"{API}/invoices.json", params={"paid": "true", "workspace_id": DEMO_WORKSPACE_ID}
    )
    assert invoice["id"] in {i["id"] for i in _records(listed.json())}
    pending = await kantata.get(f"{API}/invoices.json", params={"pending": "true"})
    assert invoice["id"] not in {i["id"] for i in _records(pending.json())}


async def test_a_draft_is_not_paid_and_a_project_payment_changes_no_invoice(
    kantata: httpx.AsyncClient,
) -> None:
    time = (await _unbilled(kantata, "time_entries", billable="true"))[:1]
    draft = _one(await _create(kantata, time_entry_ids=[time[0]["id"]], draft=True))
    refused = await kantata.post(
        f"{API}/external_payments.json",
        json={"external_payment": {"workspace_id": DEMO_WORKSPACE_ID, "invoice_id": draft["id"]}},
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "invoice_id"
    project = _one(
        await kantata.post(
            f"{API}/external_payments.json",
            json={"external_payment": {"workspace_id": DEMO_WORKSPACE_ID, "amount_in_cents": 12_345}},
        )
    )
    assert (project["invoice_id"], project["amount_in_cents"], project["currency"]) == (None, 12_345, "USD")
    assert _one(await kantata.get(f"{API}/invoices/{draft['id']}.json"))["status"] == "new"
    no_amount = await kantata.post(
        f"{API}/external_payments.json", json={"external_payment": {"workspace_id": DEMO_WORKSPACE_ID}}
    )
    assert no_amount.status_code == 422
    without_drafts = await kantata.get(
        f"{API}/invoices.json", params={"without_drafts": "true", "per_page": "200"}
    )
    assert all(not i["draft"] for i in _records(without_drafts.json()))


async def test_a_billing_milestone_is_billed_once_and_again_after_a_cancel(
    kantata: httpx.AsyncClient,
) -> None:
    # developer.kantata.com/tag/Billing-Milestones: a billing milestone carries `invoice_id`/`invoice_ids`;
    # an invoice's `billing_milestone_ids` name billing milestones, never stories.
    [story] = await _milestones(kantata)
    refused_story = await _create(kantata, billing_milestone_ids=[story["id"]])
    assert refused_story.status_code == 422
    assert refused_story.json()["errors"][0]["field"] == "billing_milestone_ids"
    milestone = await _billing_milestone(kantata, story)
    first = _one(await _create(kantata, billing_milestone_ids=[milestone["id"]]))
    twice = await _create(kantata, billing_milestone_ids=[milestone["id"]])
    assert twice.status_code == 422
    assert "has already been invoiced" in twice.json()["errors"][0]["message"]
    assert (await kantata.put(f"{API}/invoices/{first['id']}/cancel")).status_code == 200
    released = _one(await kantata.get(f"{API}/billing_milestones/{milestone['id']}.json"))
    assert (released["invoice_id"], released["invoice_ids"]) == (None, [first["id"]])
    second = _one(await _create(kantata, billing_milestone_ids=[milestone["id"]]))
    assert second["price_in_cents"] == story["budget_estimate_in_cents"]
    listed = await kantata.get(
        f"{API}/billing_milestones.json", params={"workspace_id": DEMO_WORKSPACE_ID, "story_id": story["id"]}
    )
    assert [(m["id"], m["invoice_id"]) for m in _records(listed.json())] == [(milestone["id"], second["id"])]


async def test_payment_and_fee_attributes_are_kantatas(kantata: httpx.AsyncClient) -> None:
    # mavenlink_gem lib/config/specification.yml: ExternalPayment takes amount_in_cents, message, invoice_id,
    # workspace_id; AdditionalItem and FixedFeeItem are notes, amount_in_cents, taxable.
    payment = {"workspace_id": DEMO_WORKSPACE_ID, "amount_in_cents": 500}
    with_message = _one(
        await kantata.post(
            f"{API}/external_payments.json", json={"external_payment": {**payment, "message": "Wire 42"}}
        )
    )
    assert with_message["message"] == "Wire 42"
    assert "notes" not in with_message
    assert "date" not in with_message
    with_notes = await kantata.post(
        f"{API}/external_payments.json", json={"external_payment": {**payment, "notes": "x"}}
    )
    assert with_notes.status_code == 422
    # An invoice's due_date is answered, not written: payment_schedule (days) sets it.
    dated = await _create(
        kantata, fixed_fee_items=[{"notes": "Fee", "amount_in_cents": 100}], due_date="2026-04-30"
    )
    assert dated.status_code == 422
    assert dated.json()["errors"][0]["field"] == "due_date"
    described = await _create(kantata, fixed_fee_items=[{"description": "Fee", "amount_in_cents": 100}])
    assert described.status_code == 422
    assert described.json()["errors"][0]["field"] == "fixed_fee_items"
    invoice = _one(
        await _create(kantata, fixed_fee_items=[{"notes": "Fee", "amount_in_cents": 100, "taxable": True}])
    )
    assert invoice["price_in_cents"] == 100
    [fee_id] = invoice["fixed_fee_item_ids"]
    shown = await kantata.get(f"{API}/invoices/{invoice['id']}.json", params={"include": "fixed_fee_items"})
    fee = shown.json()["fixed_fee_items"][fee_id]
    assert (fee["notes"], fee["amount_in_cents"], fee["taxable"], fee["currency"]) == (
        "Fee",
        100,
        True,
        "USD",
    )


async def test_an_expense_is_written_with_billable(kantata: httpx.AsyncClient) -> None:
    # mavenlink_gem: an expense's create attribute is `billable`; it answers `is_billable`.
    body = {
        "workspace_id": DEMO_WORKSPACE_ID,
        "date": "2026-02-10",
        "category": "Travel",
        "amount_in_cents": 900,
    }
    expense = _one(await kantata.post(f"{API}/expenses.json", json={"expense": {**body, "billable": False}}))
    assert expense["is_billable"] is False
    assert "billable" not in expense
