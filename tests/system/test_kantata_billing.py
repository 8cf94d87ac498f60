"""The Kantata adapter's billing methods against the Kantata sandbox (in process, ``httpx.ASGITransport``).

Kantata has no idempotency: every invoice is found again by Stratum's external reference to its billing key,
so a create whose answer was lost is recorded once, and an item already on an invoice is refused by name.
Payments: Kantata pays only whole invoices (``POST /external_payments`` with ``invoice_id``); a partial ERP
payment is noted on the invoice as a reference, and the payment that clears the balance pays it in full.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from apis.config import KantataSettings
from contracts.models import BillableItem, BillableItemKind, PsaInvoiceCreate, PsaInvoiceStatus
from contracts.models.billing import PsaFeeItem, PsaPaymentRecord
from sandboxes.kantata.data import DEMO_WORKSPACE_ID, EUR_WORKSPACE_ID
from system_apis.errors import NotFound, VendorRejected
from system_apis.psa.kantata import InvalidCursor, KantataPsa
from system_apis.psa.port import PeriodFilter
from system_apis.vendor_http import BreakerPolicy, RetryPolicy
from tests.system.test_kantata_adapter import Sandbox, _sandbox

THROUGH = dt.date(2026, 3, 1)
KEY = f"bill:{DEMO_WORKSPACE_ID}:2026-02"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = _sandbox()
    yield box
    await box.close()


@pytest.fixture
async def psa(sandbox: Sandbox) -> KantataPsa:
    return sandbox.psa()


async def all_items(psa: KantataPsa, project_id: str, *, limit: int = 200) -> list[BillableItem]:
    items: list[BillableItem] = []
    cursor: str | None = None
    for _ in range(100):
        page = await psa.list_billable_items(project_id, through=THROUGH, limit=limit, cursor=cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items
    raise AssertionError("the listing never ended")


def _expected_unbilled(sandbox: Sandbox, project_id: str) -> dict[str, set[str]]:
    """What the sandbox holds as approved, billable, not invoiced and dated on or before THROUGH."""
    records = sandbox.records
    last = THROUGH.isoformat()
    return {
        "time": {
            e["id"]
            for e in records["time_entries"].values()
            if e["workspace_id"] == project_id
            and e["approved"]
            and e["billable"]
            and not e["is_invoiced"]
            and e["date_performed"] <= last
        },
        "expense": {
            x["id"]
            for x in records["expenses"].values()
            if x["workspace_id"] == project_id
            and x["approved"]
            and x["is_billable"]
            and not x["is_invoiced"]
            and x["date"] <= last
        },
        "milestone": {
            s["id"]
            for s in records["stories"].values()
            if s["workspace_id"] == project_id
            and s["story_type"] == "milestone"
            and s.get("billable")
            and s["state"] == "completed"
            and s["id"] not in _invoiced_stories(sandbox)
            and (s["due_date"] or "") <= last
        },
    }


def _invoiced_stories(sandbox: Sandbox) -> set[str]:
    """Milestone stories billed through a billing milestone on an invoice (Kantata's billing schedule)."""
    return {
        b["story_id"] for b in sandbox.records["billing_milestones"].values() if b["invoice_id"] is not None
    }


def _by_kind(items: list[BillableItem]) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {"time": set(), "expense": set(), "milestone": set()}
    for item in items:
        kinds[item.kind.value].add(item.id)
    return kinds


def command(
    items: list[BillableItem], *, key: str = KEY, draft: bool = True, **changes: Any
) -> PsaInvoiceCreate:
    values: dict[str, Any] = {
        "external_key": key,
        "project_id": DEMO_WORKSPACE_ID,
        "currency": "USD",
        "invoice_date": dt.date(2026, 3, 1),
        "due_date": dt.date(2026, 3, 31),
        "time_entry_ids": [i.id for i in items if i.kind is BillableItemKind.TIME],
        "expense_ids": [i.id for i in items if i.kind is BillableItemKind.EXPENSE],
        "milestone_ids": [i.id for i in items if i.kind is BillableItemKind.MILESTONE],
        "draft": draft,
    }
    values.update(changes)
    return PsaInvoiceCreate(**values)


def invoices_with_key(sandbox: Sandbox, key: str) -> list[str]:
    return [
        r["subject_id"]
        for r in sandbox.records["external_references"].values()
        if r["subject_type"] == "Invoice"
        and r["service_model_ref"] == key
        and r["service_model"] == "Invoice"
    ]


# --- billable items ------------------------------------------------------------------------------------


async def test_billable_items_are_exactly_the_approved_billable_uninvoiced_ones(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    items = await all_items(psa, DEMO_WORKSPACE_ID)
    expected = _expected_unbilled(sandbox, DEMO_WORKSPACE_ID)
    assert _by_kind(items) == expected
    assert expected["time"]
    assert expected["expense"]
    assert expected["milestone"]
    assert len(items) == len({(i.kind, i.id) for i in items})
    assert all(i.date <= THROUGH and not i.invoiced for i in items)
    milestone = next(i for i in items if i.kind is BillableItemKind.MILESTONE)
    story = sandbox.records["stories"][milestone.id]
    assert milestone.amount is not None
    assert milestone.amount.amount == Decimal(story["budget_estimate_in_cents"]) / 100
    time = next(i for i in items if i.kind is BillableItemKind.TIME)
    entry = sandbox.records["time_entries"][time.id]
    assert time.quantity == (Decimal(entry["time_in_minutes"]) / 60).quantize(Decimal("0.01"))
    assert time.rate is not None
    assert time.rate.amount == Decimal(entry["rate_in_cents"]) / 100


async def test_small_pages_give_every_item_once_in_a_stable_order(psa: KantataPsa) -> None:
    whole = await all_items(psa, DEMO_WORKSPACE_ID)
    paged = await all_items(psa, DEMO_WORKSPACE_ID, limit=7)
    assert [(i.kind, i.id) for i in paged] == [(i.kind, i.id) for i in whole]


async def test_through_leaves_out_later_items(sandbox: Sandbox, psa: KantataPsa) -> None:
    early = dt.date(2026, 1, 15)
    page_items: list[BillableItem] = []
    cursor: str | None = None
    while True:
        page = await psa.list_billable_items(DEMO_WORKSPACE_ID, through=early, limit=200, cursor=cursor)
        page_items.extend(page.items)
        if (cursor := page.next_cursor) is None:
            break
    assert page_items
    assert all(i.date <= early for i in page_items)
    assert len(page_items) < len(await all_items(psa, DEMO_WORKSPACE_ID))


async def test_a_cursor_belongs_to_its_project_and_date(psa: KantataPsa) -> None:
    page = await psa.list_billable_items(DEMO_WORKSPACE_ID, through=THROUGH, limit=5)
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursor):
        await psa.list_billable_items(EUR_WORKSPACE_ID, through=THROUGH, limit=5, cursor=page.next_cursor)
    with pytest.raises(InvalidCursor):
        await psa.list_billable_items(DEMO_WORKSPACE_ID, through=THROUGH, limit=5, cursor="bm90LWEtY3Vyc29y")


async def test_billable_items_of_an_unknown_project_are_not_found(psa: KantataPsa) -> None:
    with pytest.raises(NotFound):
        await psa.list_billable_items("31899999", through=THROUGH, limit=10)


# --- invoices ------------------------------------------------------------------------------------------


async def test_an_invoice_bills_exactly_its_items_and_they_leave_the_billable_list(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:3]
    items.append(
        next(i for i in await all_items(psa, DEMO_WORKSPACE_ID) if i.kind is BillableItemKind.MILESTONE)
    )
    fee = PsaFeeItem(description="Travel admin fee", amount=Decimal("12.34"))
    invoice, created = await psa.create_invoice(command(items, fee_items=[fee]))
    assert created
    assert invoice.status is PsaInvoiceStatus.DRAFT
    assert invoice.external_key == KEY
    assert set(invoice.time_entry_ids) == {i.id for i in items if i.kind is BillableItemKind.TIME}
    assert invoice.milestone_ids == [items[-1].id]
    record = sandbox.records["invoices"][invoice.id]
    assert invoice.total.amount == Decimal(record["price_in_cents"]) / 100
    # A fee is an AdditionalItem of its own (notes, amount_in_cents: mavenlink_gem's specification).
    fees = [sandbox.records["additional_items"][i] for i in record["additional_item_ids"]]
    assert [(f["notes"], f["amount_in_cents"]) for f in fees] == [("Travel admin fee", 1234)]
    assert record["payment_schedule"] == 30
    # The milestone is billed through a billing milestone (developer.kantata.com/tag/Billing-Milestones)
    # that names its story and carries the story's amount; the story itself is not marked.
    [billed] = [sandbox.records["billing_milestones"][i] for i in record["billing_milestone_ids"]]
    story = sandbox.records["stories"][items[-1].id]
    assert (billed["story_id"], billed["invoice_id"]) == (story["id"], invoice.id)
    assert billed["amount_in_cents"] == story["budget_estimate_in_cents"]
    assert "is_invoiced" not in story
    left = {(i.kind, i.id) for i in await all_items(psa, DEMO_WORKSPACE_ID)}
    assert not left & {(i.kind, i.id) for i in items}
    assert await psa.find_invoice(KEY) == invoice
    assert await psa.get_invoice(invoice.id) == invoice


async def test_creating_twice_under_one_key_records_one_invoice(sandbox: Sandbox, psa: KantataPsa) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:2]
    first, created = await psa.create_invoice(command(items))
    again, created_again = await psa.create_invoice(command(items))
    assert (created, created_again) == (True, False)
    assert again == first
    assert invoices_with_key(sandbox, KEY) == [first.id]


async def test_a_lost_answer_to_the_create_is_resolved_by_looking_again(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:2]
    # Kantata records the invoice, then its answer never arrives (a 504 after the hang).
    await sandbox.fault(kind="lost", method="POST", path_pattern="^/api/v1/invoices", latency_ms=10, times=1)
    invoice, created = await psa.create_invoice(command(items))
    assert created
    assert invoices_with_key(sandbox, KEY) == [invoice.id]
    again, created_again = await psa.create_invoice(command(items))
    assert (again.id, created_again) == (invoice.id, False)
    assert len([p for p in await sandbox.posts() if p["path"].startswith("/api/v1/invoices")]) == 1


async def test_an_item_already_invoiced_is_rejected_by_name_and_nothing_is_recorded(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:2]
    await psa.create_invoice(command(items))
    before = len(sandbox.records["invoices"])
    with pytest.raises(VendorRejected, match=f"Time entry {items[0].id} has already been invoiced"):
        await psa.create_invoice(command(items[:1], key=f"bill:{DEMO_WORKSPACE_ID}:2026-03"))
    assert len(sandbox.records["invoices"]) == before
    assert await psa.find_invoice(f"bill:{DEMO_WORKSPACE_ID}:2026-03") is None


async def test_a_currency_other_than_the_projects_is_rejected_before_writing(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:1]
    with pytest.raises(VendorRejected, match="bills in USD"):
        await psa.create_invoice(command(items, currency="EUR"))
    assert not invoices_with_key(sandbox, KEY)


async def test_finalize_issues_the_draft_and_names_the_erp_invoice_once(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:2]
    draft, _ = await psa.create_invoice(command(items))
    issued = await psa.finalize_invoice(draft.id, erp_invoice_id="INV-77", erp_invoice_number="SI-2026-0077")
    assert issued.status is PsaInvoiceStatus.OPEN
    assert (issued.erp_invoice_id, issued.erp_invoice_number) == ("INV-77", "SI-2026-0077")
    again = await psa.finalize_invoice(draft.id, erp_invoice_id="INV-77", erp_invoice_number="SI-2026-0077")
    assert again == issued
    erp_refs = [
        r for r in sandbox.records["external_references"].values() if r["service_model"] == "ErpInvoice"
    ]
    assert len(erp_refs) == 1
    with pytest.raises(VendorRejected, match="already stands for"):
        await psa.finalize_invoice(draft.id, erp_invoice_id="INV-78", erp_invoice_number=None)


async def test_cancel_makes_the_items_billable_again_and_twice_is_harmless(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:2]
    invoice, _ = await psa.create_invoice(command(items, draft=False))
    cancelled = await psa.cancel_invoice(invoice.id)
    assert cancelled.status is PsaInvoiceStatus.CANCELLED
    assert (await psa.cancel_invoice(invoice.id)).status is PsaInvoiceStatus.CANCELLED
    billable = {i.id for i in await all_items(psa, DEMO_WORKSPACE_ID)}
    assert {i.id for i in items} <= billable
    assert all(not sandbox.records["time_entries"][i.id]["is_invoiced"] for i in items)


async def _milestone(psa: KantataPsa) -> BillableItem:
    return next(i for i in await all_items(psa, DEMO_WORKSPACE_ID) if i.kind is BillableItemKind.MILESTONE)


async def test_a_cancelled_milestone_is_billed_again_through_the_same_billing_milestone(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    milestone = await _milestone(psa)
    first, _ = await psa.create_invoice(command([milestone], draft=False))
    assert milestone.id not in {i.id for i in await all_items(psa, DEMO_WORKSPACE_ID)}
    await psa.cancel_invoice(first.id)
    assert milestone.id in {i.id for i in await all_items(psa, DEMO_WORKSPACE_ID)}
    again, _ = await psa.create_invoice(command([milestone], key=f"{KEY}:again"))
    assert again.milestone_ids == [milestone.id]
    schedule = [b for b in sandbox.records["billing_milestones"].values() if b["story_id"] == milestone.id]
    assert [(b["invoice_id"], b["invoice_ids"]) for b in schedule] == [(again.id, [first.id, again.id])]


async def test_a_milestone_already_invoiced_is_refused_by_name(sandbox: Sandbox, psa: KantataPsa) -> None:
    milestone = await _milestone(psa)
    await psa.create_invoice(command([milestone]))
    invoices = len(sandbox.records["invoices"])
    with pytest.raises(VendorRejected, match=f"milestone {milestone.id} has already been invoiced"):
        await psa.create_invoice(command([milestone], key=f"{KEY}:twice"))
    assert len(sandbox.records["billing_milestones"]) == 1
    assert len(sandbox.records["invoices"]) == invoices


async def test_a_lost_answer_to_the_billing_milestone_makes_no_second_one(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    milestone = await _milestone(psa)
    await sandbox.fault(
        kind="lost", method="POST", path_pattern="^/api/v1/billing_milestones", latency_ms=10, times=1
    )
    invoice, created = await psa.create_invoice(command([milestone]))
    assert created
    assert invoice.milestone_ids == [milestone.id]
    [billed] = sandbox.records["billing_milestones"].values()
    assert (billed["story_id"], billed["invoice_id"]) == (milestone.id, invoice.id)


async def test_two_invoices_asking_for_one_milestone_at_once_bill_it_once(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    """The month's run and the milestone run billing the same completed milestone at the same moment: each
    finds no billing milestone and makes one, so the story has two; both invoices must use the first one
    made (the lowest id), and Kantata refuses the second invoice as it refuses any invoiced item."""
    milestone = await _milestone(psa)
    # Each create of a billing milestone is slow, so both look before either has made one.
    await sandbox.fault(
        kind="latency", method="POST", path_pattern="^/api/v1/billing_milestones", latency_ms=100, times=2
    )
    outcomes = await asyncio.gather(
        psa.create_invoice(command([milestone], key=f"{KEY}:month")),
        psa.create_invoice(command([milestone], key=f"{KEY}:day")),
        return_exceptions=True,
    )
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(made) == 1, outcomes
    assert len(refused) == 1, refused
    assert isinstance(refused[0], VendorRejected), refused
    billed = [b for b in sandbox.records["billing_milestones"].values() if b["invoice_id"] is not None]
    assert [b["story_id"] for b in billed] == [milestone.id]


# --- payments ------------------------------------------------------------------------------------------


def _payment(erp_payment_id: str, amount: str, balance: str) -> PsaPaymentRecord:
    return PsaPaymentRecord(
        erp_payment_id=erp_payment_id,
        date=dt.date(2026, 3, 20),
        amount=Decimal(amount),
        currency="USD",
        balance=Decimal(balance),
    )


def _payments_in_kantata(sandbox: Sandbox, invoice_id: str) -> list[dict[str, Any]]:
    return [p for p in sandbox.records["external_payments"].values() if p["invoice_id"] == invoice_id]


async def test_a_partial_then_a_full_payment_each_reach_kantata_once_and_nothing_is_counted_twice(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:2]
    invoice, _ = await psa.create_invoice(command(items, draft=False))
    total = invoice.total.amount
    partial = _payment("PAY-1", "100.00", str(total - Decimal("100.00")))
    after_partial = await psa.record_payment(invoice.id, partial)
    assert after_partial.status is PsaInvoiceStatus.OPEN  # Kantata holds no partial payment of an invoice
    assert await psa.record_payment(invoice.id, partial) == after_partial  # told twice, recorded once
    assert not sandbox.records["external_payments"]  # no money booked for a part payment
    final = _payment("PAY-2", str(total - Decimal("100.00")), "0")
    paid = await psa.record_payment(invoice.id, final)
    assert paid.status is PsaInvoiceStatus.PAID
    assert await psa.record_payment(invoice.id, final) == paid
    assert await psa.record_payment(invoice.id, partial) == paid  # a late replay changes nothing
    payments = _payments_in_kantata(sandbox, invoice.id)
    assert [p["amount_in_cents"] for p in payments] == [
        sandbox.records["invoices"][invoice.id]["price_in_cents"]
    ]
    notes = [
        r
        for r in sandbox.records["external_references"].values()
        if r["subject_id"] == invoice.id and r["service_model"] == "Payment"
    ]
    assert sorted(r["service_model_ref"] for r in notes) == ["PAY-1", "PAY-2"]
    assert {r["external_status"] for r in notes} == {"partially paid", "paid in full"}


async def test_a_lost_answer_to_the_payment_is_settled_by_the_invoices_state(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:1]
    invoice, _ = await psa.create_invoice(command(items, draft=False))
    await sandbox.fault(
        kind="lost", method="POST", path_pattern="^/api/v1/external_payments", latency_ms=10, times=1
    )
    paid = await psa.record_payment(invoice.id, _payment("PAY-9", str(invoice.total.amount), "0"))
    assert paid.status is PsaInvoiceStatus.PAID
    assert len(_payments_in_kantata(sandbox, invoice.id)) == 1


async def test_a_draft_cannot_be_paid_in_full(psa: KantataPsa) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:1]
    invoice, _ = await psa.create_invoice(command(items))
    with pytest.raises(VendorRejected, match="draft"):
        await psa.record_payment(invoice.id, _payment("PAY-3", str(invoice.total.amount), "0"))


async def test_an_invoiced_item_is_left_out_even_when_kantata_ignores_the_filter() -> None:
    """A Kantata that ignored ``is_invoiced=false`` must not put an invoiced item on a second invoice."""

    def entry(entry_id: str, *, invoiced: bool) -> dict[str, Any]:
        return {
            "id": entry_id,
            "workspace_id": "10",
            "date_performed": "2026-02-10",
            "time_in_minutes": 60,
            "billable": True,
            "approved": True,
            "is_invoiced": invoiced,
            "rate_in_cents": 10000,
            "currency": "USD",
        }

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/workspaces/10.json"):
            body: dict[str, Any] = {
                "count": 1,
                "results": [{"key": "workspaces", "id": "10"}],
                "workspaces": {"10": {"id": "10", "title": "P", "currency": "USD"}},
            }
        elif path.endswith("/time_entries.json"):
            entries = {"1": entry("1", invoiced=True), "2": entry("2", invoiced=False)}
            body = {
                "count": 2,
                "results": [{"key": "time_entries", "id": k} for k in entries],
                "time_entries": entries,
            }
        else:
            body = {"count": 0, "results": []}
        return httpx.Response(200, json=body)

    psa = KantataPsa(
        KantataSettings(base_url="http://kantata.test/api/v1"),
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(failure_threshold=0),
    )
    try:
        page = await psa.list_billable_items("10", through=THROUGH, limit=50)
        assert [item.id for item in page.items] == ["2"]
    finally:
        await psa.close()


async def test_an_approved_expense_without_an_approved_field_is_billed_and_listed_as_approved() -> None:
    """Kantata's expense carries no ``approved`` attribute (mavenlink_gem's specification lists none: approval
    lives on expense report submissions); the ``approved`` filter (developer.kantata.com/kantata/
    specification/expenses/get-expenses) is what selects approved ones, so an answer without the field is
    not an unapproved expense. The date filter is ``date_expensed_between``."""
    seen: list[httpx.Request] = []
    expense = {
        "id": "7",
        "workspace_id": "10",
        "date": "2026-02-10",
        "amount_in_cents": 4200,
        "currency": "USD",
        "category": "Travel",
        "is_billable": True,
        "is_invoiced": False,
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path.endswith("/workspaces/10.json"):
            body: dict[str, Any] = {
                "count": 1,
                "results": [{"key": "workspaces", "id": "10"}],
                "workspaces": {"10": {"id": "10", "title": "P", "currency": "USD"}},
            }
        elif path.endswith("/expenses.json"):
            body = {"count": 1, "results": [{"key": "expenses", "id": "7"}], "expenses": {"7": expense}}
        else:
            body = {"count": 0, "results": []}
        return httpx.Response(200, json=body)

    psa = KantataPsa(
        KantataSettings(base_url="http://kantata.test/api/v1"),
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(failure_threshold=0),
    )
    try:
        items: list[BillableItem] = []
        cursor: str | None = None
        for _ in range(5):
            page = await psa.list_billable_items("10", through=THROUGH, limit=50, cursor=cursor)
            items.extend(page.items)
            if (cursor := page.next_cursor) is None:
                break
        listed = await psa.list_expenses(PeriodFilter(project_id="10", approved=True), limit=10)
    finally:
        await psa.close()
    assert [(i.kind, i.id) for i in items] == [(BillableItemKind.EXPENSE, "7")]
    assert [(x.id, x.approved) for x in listed.items] == [("7", True)]
    expense_calls = [r for r in seen if r.url.path.endswith("/expenses.json")]
    assert expense_calls[0].url.params["date_expensed_between"] == f"1900-01-01:{THROUGH.isoformat()}"
    assert all(r.url.params["approved"] == "true" for r in expense_calls)


async def test_time_is_named_by_its_roles_name_as_the_rate_card_names_roles(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    # Kantata names a time entry's role by id (the roles resource gives its name); the deal's rate card
    # names roles, so the billable item carries the name.
    entries = [
        e
        for e in sandbox.records["time_entries"].values()
        if e["workspace_id"] == DEMO_WORKSPACE_ID and e["approved"] and e["billable"] and not e["is_invoiced"]
    ]
    assert entries
    entries[0]["role_id"] = "4204"
    items = {i.id: i for i in await all_items(psa, DEMO_WORKSPACE_ID) if i.kind is BillableItemKind.TIME}
    assert items[str(entries[0]["id"])].role == "Senior Consultant"


async def test_a_projects_invoices_are_read_with_the_workspace_in_one_round(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    items = (await all_items(psa, DEMO_WORKSPACE_ID))[:2]
    invoice, _ = await psa.create_invoice(command(items))
    before = len(await sandbox.api_requests())
    listed = [i.id for i in await psa.list_invoices(DEMO_WORKSPACE_ID)]
    assert invoice.id in listed
    assert listed == sorted(
        i["id"] for i in sandbox.records["invoices"].values() if DEMO_WORKSPACE_ID in i["workspace_ids"]
    )
    paths = [r["path"] for r in (await sandbox.api_requests())[before:]]
    # Both asked at once (the workspace only to tell a missing project from one with no invoices).
    assert sorted(p.rsplit("/", 1)[-1] for p in paths) == [f"{DEMO_WORKSPACE_ID}.json", "invoices.json"]


async def test_the_invoices_of_an_unknown_project_are_not_found(psa: KantataPsa) -> None:
    with pytest.raises(NotFound):
        await psa.list_invoices("31899999")
    with pytest.raises(NotFound):
        await psa.list_invoices("not-a-kantata-id")
