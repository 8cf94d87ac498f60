"""The NetSuite adapter's billing methods against the sandbox: drafts (invoice approval) and posting, tax
code, memo and line source ids, reversing an invoice (a credit memo by transform; a draft rejected),
payments since a watermark, overdue and credit hold; with lost answers where a write could repeat."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from contracts.models import InvoiceCreate, InvoiceLineInput, InvoiceStatus
from sandboxes.netsuite import create_netsuite_sandbox
from sandboxes.netsuite.data import DEMO_CUSTOMER_ID, DEMO_PROJECT_ID, OVERDUE_INVOICE_ID, PAID_INVOICE_ID
from system_apis.erp.netsuite import NetSuiteErp
from system_apis.erp.netsuite_mapping import (
    SOURCES_FIELD,
    NetSuiteCustomer,
    NetSuiteRef,
    SetupLookup,
    credit_hold,
    invoice_body,
    is_overdue,
)
from system_apis.erp.port import InvoiceFilter
from system_apis.errors import VendorRejected
from tests.system.test_netsuite_adapter import API, LoseResponses, Sandbox

SOURCES = ["time:501", "time:502", "expense:77"]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(create_netsuite_sandbox())
    yield box
    await box.close()


@pytest.fixture
def erp(sandbox: Sandbox) -> NetSuiteErp:
    return sandbox.erp()


def command(key: str, **overrides: Any) -> InvoiceCreate:
    fields: dict[str, Any] = {
        "external_key": key,
        "customer_id": DEMO_CUSTOMER_ID,
        "currency": "USD",
        "issue_date": dt.date(2026, 3, 1),
        "due_date": dt.date(2099, 3, 31),
        "project_id": DEMO_PROJECT_ID,
        "tax_code": "US-NY",
        "memo": "Consulting, February 2026",
        "lines": [
            InvoiceLineInput(
                description="Consulting, February",
                quantity=Decimal("7.5"),
                unit_price=Decimal("225.10"),
                source_ids=SOURCES,
            ),
            InvoiceLineInput(
                description="Retainer", unit_price=Decimal("1000.00"), source_ids=["retainer:3001:2026-02"]
            ),
        ],
    }
    return InvoiceCreate(**{**fields, **overrides})


async def finance(sandbox: Sandbox, erp: NetSuiteErp, method: str, path: str, body: dict[str, Any]) -> None:
    """What a finance user does in NetSuite (enters a payment, edits a customer), on the REST API."""
    token = await erp.auth.access_token()
    async with httpx.AsyncClient(transport=sandbox.transport, base_url=API) as client:
        response = await client.request(
            method, f"/record/v1/{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 204, response.text


async def enter_payment(sandbox: Sandbox, erp: NetSuiteErp, invoice_id: str, amount: str) -> None:
    await finance(
        sandbox,
        erp,
        "POST",
        "customerPayment",
        {
            "customer": {"id": DEMO_CUSTOMER_ID},
            "payment": float(amount),
            "apply": {"items": [{"doc": {"id": invoice_id}, "apply": True, "amount": float(amount)}]},
        },
    )


# --- drafts, posting, what the lines carry ----------------------------------------------------------


async def test_a_draft_whose_create_answer_is_lost_is_one_invoice_and_posts_once(sandbox: Sandbox) -> None:
    lossy = sandbox.erp(transport=LoseResponses(sandbox.transport, method="POST", path="/record/v1/invoice"))
    draft, created = await lossy.create_invoice(command("bill:3001:2026-02", draft=True))
    assert draft.status is InvoiceStatus.DRAFT
    assert created is False  # the lost 202's job made it
    replay, created_again = await lossy.create_invoice(command("bill:3001:2026-02", draft=True))
    assert (replay.id, created_again) == (draft.id, False)
    (stored,) = sandbox.records("invoice", externalId="bill:3001:2026-02")
    assert (stored["status"], stored["approvalStatus"]) == ("D", "1")

    posted = await lossy.post_invoice(draft.id)
    again = await lossy.post_invoice(draft.id)
    assert posted.status is again.status is InvoiceStatus.POSTED
    assert posted.total.amount == Decimal("2688.25")  # 7.5 x 225.10 + 1000.00
    assert len(sandbox.records("invoice", externalId="bill:3001:2026-02")) == 1
    # The second post changed nothing: one PATCH in all.
    assert len(await sandbox.requests(f"/record/v1/invoice/{draft.id}", method="PATCH")) == 1


async def test_tax_code_memo_and_source_ids_round_trip(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    invoice, created = await erp.create_invoice(command("bill:3001:2026-03"))
    assert created is True
    assert invoice.status is InvoiceStatus.POSTED
    assert [line.source_ids for line in invoice.lines] == [SOURCES, ["retainer:3001:2026-02"]]
    fetched = await erp.get_invoice(invoice.id)
    assert fetched.lines == invoice.lines
    (stored,) = sandbox.records("invoice", externalId="bill:3001:2026-03")
    assert stored["memo"] == "Consulting, February 2026"
    tax_item = sandbox.records("salesTaxItem", externalId="US-NY")[0]["id"]
    assert {line["taxCode"] for line in stored["item"]} == {tax_item}
    assert stored["item"][0][SOURCES_FIELD] == "time:501,time:502,expense:77"


async def test_subtotal_tax_and_total_come_from_the_invoice_record(
    sandbox: Sandbox, erp: NetSuiteErp
) -> None:
    """The invoice record's subtotal, taxTotal and total (REST API Browser, invoice) become the canonical
    subtotal, tax and total. The sandbox computes no tax (REST needs SuiteTax for it): taxTotal 0."""
    invoice, _ = await erp.create_invoice(command("bill:3001:2026-05"))
    (stored,) = sandbox.records("invoice", externalId="bill:3001:2026-05")
    assert (stored["subtotal"], stored["taxTotal"], stored["total"]) == (2688.25, 0.0, 2688.25)
    fetched = await erp.get_invoice(invoice.id)
    for read in (invoice, fetched):
        assert read.subtotal is not None
        assert read.tax is not None
        assert read.subtotal.amount == sum(line.amount for line in read.lines) == Decimal("2688.25")
        assert read.tax.amount == 0
        assert read.total.amount == read.subtotal.amount + read.tax.amount


def test_the_invoice_body_carries_approval_tax_code_memo_and_sources() -> None:
    setup = SetupLookup(currency_codes={"1": "USD"})
    body = invoice_body(command("bill:1:2026-01", draft=True), item_id="101", setup=setup)
    assert body["approvalStatus"] == {"id": "1"}
    assert body["memo"] == "Consulting, February 2026"
    first, second = body["item"]["items"]
    assert first["taxCode"] == {"externalId": "US-NY"}
    assert first[SOURCES_FIELD] == "time:501,time:502,expense:77"
    assert second[SOURCES_FIELD] == "retainer:3001:2026-02"
    plain = invoice_body(
        command(
            "bill:1:2026-01",
            tax_code=None,
            memo=None,
            lines=[InvoiceLineInput(description="x", unit_price=Decimal(1))],
        ),
        item_id="101",
        setup=setup,
    )
    assert "approvalStatus" not in plain
    assert "memo" not in plain
    assert set(plain["item"]["items"][0]) == {"item", "description", "quantity", "rate", "amount"}


# --- void and credit ---------------------------------------------------------------------------------


async def test_voiding_a_posted_invoice_credits_it_once_twice_is_the_same_answer(
    sandbox: Sandbox, erp: NetSuiteErp
) -> None:
    invoice, _ = await erp.create_invoice(command("bill:3001:2026-04"))
    voided = await erp.void_invoice(invoice.id)
    again = await erp.void_invoice(invoice.id)
    assert voided.status is InvoiceStatus.VOID
    assert voided.balance.amount == Decimal(0)
    assert voided.credit_memo_id is not None
    assert again == voided
    assert (await erp.get_invoice(invoice.id)).credit_memo_id == voided.credit_memo_id
    (memo,) = sandbox.records("creditMemo", createdFrom=invoice.id)
    assert (memo["id"], memo["externalId"], memo["total"]) == (
        voided.credit_memo_id,
        f"void:{invoice.id}",
        2688.25,
    )
    assert len(await sandbox.requests("/!transform/creditMemo", method="POST")) == 1
    # Listed (SuiteQL), the credited invoice is void too, not "paid", and a void filter finds it.
    listed = await erp.list_invoices(
        InvoiceFilter(status=InvoiceStatus.VOID, customer_id=DEMO_CUSTOMER_ID), limit=100
    )
    assert [(i.id, i.credit_memo_id, i.balance.amount) for i in listed.items] == [
        (invoice.id, voided.credit_memo_id, Decimal(0))
    ]
    paid = await erp.list_invoices(
        InvoiceFilter(status=InvoiceStatus.PAID, customer_id=DEMO_CUSTOMER_ID), limit=100
    )
    assert invoice.id not in {i.id for i in paid.items}


async def test_a_lost_credit_answer_still_makes_one_credit_memo(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    invoice, _ = await erp.create_invoice(command("bill:3001:2026-05"))
    lossy = sandbox.erp(
        transport=LoseResponses(sandbox.transport, method="POST", path="/!transform/creditMemo", times=1)
    )
    voided = await lossy.void_invoice(invoice.id)
    assert voided.status is InvoiceStatus.VOID
    # One transform was sent and acted on; its answer was lost, and the memo was found rather than resent.
    posts = await sandbox.requests("/!transform/creditMemo", method="POST")
    assert [status for *_, status in posts] == [204]
    replayed = await lossy.void_invoice(invoice.id)
    assert replayed.credit_memo_id == voided.credit_memo_id
    assert len(sandbox.records("creditMemo", createdFrom=invoice.id)) == 1


async def test_voiding_is_refused_once_a_payment_is_applied(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    invoice, _ = await erp.create_invoice(command("bill:3001:2026-06"))
    await enter_payment(sandbox, erp, invoice.id, "100.00")
    with pytest.raises(VendorRejected) as refused:
        await erp.void_invoice(invoice.id)
    assert "payments applied" in refused.value.message
    assert sandbox.records("creditMemo", createdFrom=invoice.id) == []
    assert (await erp.get_invoice(invoice.id)).status is InvoiceStatus.PARTIALLY_PAID


async def test_voiding_a_draft_rejects_it_and_a_replayed_run_does_not_raise_it_again(
    sandbox: Sandbox, erp: NetSuiteErp
) -> None:
    draft, _ = await erp.create_invoice(command("bill:3001:2026-07", draft=True))
    voided = await erp.void_invoice(draft.id)
    again = await erp.void_invoice(draft.id)
    assert voided.status is again.status is InvoiceStatus.VOID
    assert voided.credit_memo_id is None
    replay, created = await erp.create_invoice(command("bill:3001:2026-07", draft=True))
    assert (replay.id, replay.status, created) == (draft.id, InvoiceStatus.VOID, False)
    with pytest.raises(VendorRejected):
        await erp.post_invoice(draft.id)
    assert sandbox.records("creditMemo") == []


# --- payments and status back ------------------------------------------------------------------------


async def test_payments_since_a_watermark_and_the_invoices_they_changed(
    sandbox: Sandbox, erp: NetSuiteErp
) -> None:
    invoice, _ = await erp.create_invoice(command("bill:3001:2026-08"))
    await asyncio.sleep(1.1)  # NetSuite's times are to the second
    watermark = dt.datetime.now(dt.UTC)
    assert (await erp.list_payments(modified_since=watermark, limit=10)).items == []
    await enter_payment(sandbox, erp, invoice.id, "688.25")
    first = await erp.list_payments(modified_since=watermark, limit=10)
    (payment,) = first.items
    assert payment.invoice_ids == [invoice.id]
    assert payment.amount.amount == Decimal("688.25")
    assert payment.updated_at is not None
    assert payment.updated_at >= watermark.replace(microsecond=0)
    changed = await erp.list_invoices(InvoiceFilter(modified_since=watermark), limit=10)
    assert [(i.id, i.status, i.balance.amount) for i in changed.items] == [
        (invoice.id, InvoiceStatus.PARTIALLY_PAID, Decimal("2000.00"))
    ]
    await enter_payment(sandbox, erp, invoice.id, "2000.00")
    both = await erp.list_payments(modified_since=watermark, limit=10)
    assert len(both.items) == 2
    assert (await erp.get_invoice(invoice.id)).status is InvoiceStatus.PAID
    # The seed's payments are older than the watermark; without it they are all there.
    assert len((await erp.list_payments(limit=1000)).items) > 2


async def test_overdue_is_a_balance_past_its_due_date(erp: NetSuiteErp) -> None:
    overdue = await erp.get_invoice(OVERDUE_INVOICE_ID)
    assert overdue.overdue is True
    assert overdue.balance.amount > 0
    assert (await erp.get_invoice(PAID_INVOICE_ID)).overdue is False
    future, _ = await erp.create_invoice(command("bill:3001:2026-09"))
    assert future.overdue is False
    past, _ = await erp.create_invoice(command("bill:3001:2026-10", due_date=dt.date(2026, 3, 31)))
    assert past.overdue is True
    listed = await erp.list_invoices(InvoiceFilter(customer_id=DEMO_CUSTOMER_ID), limit=1000)
    by_id = {invoice.id: invoice for invoice in listed.items}
    assert by_id[past.id].overdue is True
    assert by_id[future.id].overdue is False


def test_is_overdue_compares_with_the_utc_date() -> None:
    today = dt.date(2026, 6, 1)
    assert is_overdue(Decimal("1"), dt.date(2026, 5, 31), today) is True
    assert is_overdue(Decimal("1"), today, today) is False  # due today is not late yet
    assert is_overdue(Decimal("0"), dt.date(2026, 1, 1), today) is False
    assert is_overdue(Decimal("1"), None, today) is False


# --- credit hold -------------------------------------------------------------------------------------


async def test_credit_hold_follows_the_customers_credit_hold_setting(
    sandbox: Sandbox, erp: NetSuiteErp
) -> None:
    path = f"customer/{DEMO_CUSTOMER_ID}"
    assert (await erp.get_customer(DEMO_CUSTOMER_ID)).credit_hold is None  # the record does not say
    await finance(sandbox, erp, "PATCH", path, {"creditHoldOverride": {"id": "ON"}})
    assert (await erp.get_customer(DEMO_CUSTOMER_ID)).credit_hold is True
    await finance(sandbox, erp, "PATCH", path, {"creditHoldOverride": {"id": "OFF"}})
    assert (await erp.get_customer(DEMO_CUSTOMER_ID)).credit_hold is False
    await finance(sandbox, erp, "PATCH", path, {"creditHoldOverride": {"id": "AUTO"}, "creditLimit": 1.0})
    assert (await erp.get_customer(DEMO_CUSTOMER_ID)).credit_hold is True  # open balance over the limit
    await finance(sandbox, erp, "PATCH", path, {"creditLimit": 10_000_000.0})
    assert (await erp.get_customer(DEMO_CUSTOMER_ID)).credit_hold is False


def test_auto_credit_hold_without_a_limit_is_not_a_hold() -> None:
    auto = NetSuiteRef(id="AUTO")
    assert credit_hold(NetSuiteCustomer(id="1", credit_hold_override=auto, balance=Decimal(5))) is False
    limited = NetSuiteCustomer(id="1", credit_hold_override=auto, balance=Decimal(5), credit_limit=Decimal(4))
    assert credit_hold(limited) is True
    assert credit_hold(NetSuiteCustomer(id="1", credit_hold_override=NetSuiteRef(id="on"))) is True
