"""The Business Central adapter's billing methods against the sandbox in process: drafts and posting,
voiding (delete a draft, cancel a posted invoice with its corrective credit memo), payments since a
watermark, the line trail of source ids, tax codes, overdue and credit hold; with lost answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from contracts.models import InvoiceCreate, InvoiceLineInput, InvoiceStatus
from sandboxes.business_central import DE_COMPANY_ID, create_business_central_sandbox
from sandboxes.business_central.customer_payments import CUSTOMER_PAYMENTS
from sandboxes.business_central.data import (
    BLOCKED_CUSTOMER_ID,
    DRAFT_INVOICE_ID,
    MUELLER_CUSTOMER_ID,
    OPEN_INVOICE_ID,
    OVERDUE_INVOICE_ID,
    PARTIALLY_PAID_INVOICE_ID,
    SEED_DATE,
    company_setup,
)
from system_apis.erp.business_central import BusinessCentralErp
from system_apis.erp.business_central_mapping import SOURCE_PREFIX, BcInvoiceLine, source_ids_by_line
from system_apis.erp.port import InvoiceFilter
from system_apis.errors import NotFound, VendorRejected, VendorUnavailable
from tests.system.test_business_central_adapter import Sandbox, settings

TIME_IDS = [f"time:{number}" for number in range(100001, 100041)]  # 40 ids: more than one comment line


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(create_business_central_sandbox())
    yield box
    await box.close()


@pytest.fixture
def erp(sandbox: Sandbox) -> BusinessCentralErp:
    return sandbox.erp()


def billing_command(key: str, **overrides: Any) -> InvoiceCreate:
    fields: dict[str, Any] = {
        "external_key": key,
        "customer_id": MUELLER_CUSTOMER_ID,
        "currency": "EUR",
        "issue_date": SEED_DATE,
        "due_date": SEED_DATE + dt.timedelta(days=30),
        "tax_code": "VAT19",
        "memo": "Services March 2026, PO 4711",
        "lines": [
            InvoiceLineInput(
                description="Senior Consultant, 40 h",
                quantity=Decimal("40"),
                unit_price=Decimal("165.00"),
                source_ids=TIME_IDS,
            ),
            InvoiceLineInput(
                description="Travel",
                quantity=Decimal("1"),
                unit_price=Decimal("240.55"),
                source_ids=["expense:9"],
            ),
            InvoiceLineInput(
                description="Retainer", unit_price=Decimal("1000"), source_ids=["retainer:77:2026-03"]
            ),
        ],
    }
    return InvoiceCreate(**{**fields, **overrides})


async def test_source_ids_tax_code_and_memo_round_trip(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    invoice, created = await erp.create_invoice(billing_command("bill:p1:2026-03"))
    assert created is True
    read = await erp.get_invoice(invoice.id)
    assert [line.source_ids for line in read.lines] == [TIME_IDS, ["expense:9"], ["retainer:77:2026-03"]]
    assert [line.amount for line in read.lines] == [Decimal("6600.00"), Decimal("240.55"), Decimal("1000.00")]
    # The lines are net; the invoice adds Business Central's 19 % VAT (1,489.7045: rounded once).
    assert read.subtotal is not None
    assert read.tax is not None
    assert read.subtotal.amount == sum(line.amount for line in read.lines) == Decimal("7840.55")
    assert read.tax.amount == Decimal("1489.70")
    assert read.total.amount == read.subtotal.amount + read.tax.amount == Decimal("9330.25")
    (stored,) = sandbox.records("salesInvoices", externalDocumentNumber="BILL:P1:2026-03")
    lines = stored["salesInvoiceLines"]
    # The billing key as Stratum wrote it leads (externalDocumentNumber, a Code field, is upper case), then
    # the memo.
    assert lines[0] == {**lines[0], "lineType": "Comment", "description": "Key: bill:p1:2026-03"}
    assert lines[1] == {**lines[1], "lineType": "Comment", "description": "Services March 2026, PO 4711"}
    assert read.external_key == "bill:p1:2026-03"
    assert {line["taxCode"] for line in lines if line["lineType"] == "Account"} == {"VAT19"}
    trail = [line["description"] for line in lines if line["description"].startswith(SOURCE_PREFIX)]
    assert len(trail) > 3
    assert all(len(description) <= 100 for description in trail)
    listed = await erp.list_invoices(InvoiceFilter(customer_id=MUELLER_CUSTOMER_ID), limit=1000)
    (same,) = [item for item in listed.items if item.id == invoice.id]
    assert same.lines == read.lines
    assert same.external_key == "bill:p1:2026-03"


async def test_an_unknown_tax_code_is_refused_by_business_central(erp: BusinessCentralErp) -> None:
    with pytest.raises(VendorRejected) as refused:
        await erp.create_invoice(billing_command("bill:p1:2026-04", tax_code="VAT99"))
    assert "VAT Prod. Posting Group" in refused.value.message


def test_comment_lines_of_others_are_no_trail() -> None:
    lines = [
        BcInvoiceLine(
            sequence=10000, line_type="Comment", description=f"{SOURCE_PREFIX}time:0"
        ),  # before any line
        BcInvoiceLine(sequence=20000, line_type="Account", description="A"),
        BcInvoiceLine(sequence=30000, line_type="Comment", description=f"{SOURCE_PREFIX}time:1,ti"),
        BcInvoiceLine(sequence=40000, line_type="Comment", description=f"{SOURCE_PREFIX}me:2"),
        BcInvoiceLine(sequence=50000, line_type="Comment", description="Thank you for your business"),
        BcInvoiceLine(sequence=60000, line_type="Account", description="B"),
    ]
    assert [(line.description, ids) for line, ids in source_ids_by_line(lines)] == [
        ("A", ["time:1", "time:2"]),
        ("B", []),
    ]


async def test_a_lost_create_answer_still_makes_one_invoice(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    await sandbox.fault(kind="lost", method="POST", path_pattern="/salesInvoices$", latency_ms=10, times=1)
    invoice, created = await erp.create_invoice(billing_command("bill:p2:2026-03"))
    again, created_again = await erp.create_invoice(billing_command("bill:p2:2026-03"))
    assert (created, created_again) == (True, False)
    assert again.id == invoice.id
    assert invoice.status is InvoiceStatus.POSTED
    assert next(line.source_ids for line in again.lines) == TIME_IDS
    assert len(sandbox.records("salesInvoices", externalDocumentNumber="BILL:P2:2026-03")) == 1


async def test_a_draft_waits_then_posts_once_under_the_same_id(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    made, _created = await erp.create_invoice(billing_command("bill:p3:2026-03", draft=True))
    again, _ = await erp.create_invoice(billing_command("bill:p3:2026-03", draft=True))
    assert (made.status, again.status, again.id) == (InvoiceStatus.DRAFT, InvoiceStatus.DRAFT, made.id)

    posted = await erp.post_invoice(made.id)
    twice = await erp.post_invoice(made.id)

    assert posted.id == twice.id == made.id
    assert posted.status is twice.status is InvoiceStatus.POSTED
    assert posted.number is not None
    assert posted.number.isdigit()
    assert posted.balance.amount == Decimal("9330.25")  # the customer owes the VAT too
    assert len(await sandbox.requests("Microsoft.NAV.post", "POST")) == 1


async def test_a_lost_post_answer_is_settled_by_reading(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    made, _ = await erp.create_invoice(billing_command("bill:p4:2026-03", draft=True))
    await sandbox.fault(kind="lost", method="POST", path_pattern="Microsoft.NAV.post", latency_ms=10, times=1)
    posted = await erp.post_invoice(made.id)
    assert posted.status is InvoiceStatus.POSTED
    assert sandbox.records("salesInvoices", id=made.id)[0]["status"] == "Open"


async def test_a_post_refused_while_still_a_draft_stays_refused(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    await sandbox.fault(kind="error", status=503, method="POST", path_pattern="Microsoft.NAV.post", times=5)
    with pytest.raises(VendorUnavailable):
        await erp.post_invoice(DRAFT_INVOICE_ID)
    assert sandbox.records("salesInvoices", id=DRAFT_INVOICE_ID)[0]["status"] == "Draft"


async def test_void_a_posted_invoice_twice_cancels_once_with_its_credit_memo(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    voided = await erp.void_invoice(OPEN_INVOICE_ID)
    again = await erp.void_invoice(OPEN_INVOICE_ID)
    read = await erp.get_invoice(OPEN_INVOICE_ID)

    (memo,) = sandbox.records("salesCreditMemos")
    assert voided.status is again.status is read.status is InvoiceStatus.VOID
    assert voided.credit_memo_id == again.credit_memo_id == read.credit_memo_id == memo["id"]
    assert voided.balance.amount == 0
    assert memo["status"] == "Corrective"
    assert len(await sandbox.requests("Microsoft.NAV.cancel", "POST")) == 1


async def test_a_lost_cancel_answer_is_settled_by_reading(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    await sandbox.fault(
        kind="lost", method="POST", path_pattern="Microsoft.NAV.cancel", latency_ms=10, times=1
    )
    voided = await erp.void_invoice(OPEN_INVOICE_ID)
    assert voided.status is InvoiceStatus.VOID
    assert voided.credit_memo_id is not None
    assert len(sandbox.records("salesCreditMemos")) == 1


async def test_void_is_refused_for_an_invoice_with_payments(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    with pytest.raises(VendorRejected) as refused:
        await erp.void_invoice(PARTIALLY_PAID_INVOICE_ID)
    assert refused.value.vendor_code == "InvoicePaid"
    assert sandbox.records("salesCreditMemos") == []
    assert sandbox.records("salesInvoices", id=PARTIALLY_PAID_INVOICE_ID)[0]["status"] == "Open"


async def test_voiding_a_draft_deletes_it(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    voided = await erp.void_invoice(DRAFT_INVOICE_ID)
    assert voided.status is InvoiceStatus.VOID
    assert voided.credit_memo_id is None
    assert sandbox.records("salesInvoices", id=DRAFT_INVOICE_ID) == []
    with pytest.raises(NotFound):
        await erp.void_invoice(DRAFT_INVOICE_ID)  # nothing is left to void


async def test_a_cancelled_invoice_cannot_be_posted(erp: BusinessCentralErp) -> None:
    await erp.void_invoice(OPEN_INVOICE_ID)
    with pytest.raises(VendorRejected) as refused:
        await erp.post_invoice(OPEN_INVOICE_ID)
    assert refused.value.vendor_code == "InvoiceCanceled"


async def test_payments_since_a_watermark(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    now = dt.datetime.now(dt.UTC)
    sandbox.state.clock = lambda: now.timestamp()
    watermark = now - dt.timedelta(seconds=30)
    assert (await erp.list_payments(modified_since=watermark, limit=100)).items == []

    setup = company_setup(DE_COMPANY_ID)
    assert setup is not None
    payment_body = {
        "customerId": MUELLER_CUSTOMER_ID,
        "appliesToInvoiceId": OPEN_INVOICE_ID,
        "amount": -Decimal("1000.25"),
    }
    sandbox.state.create(CUSTOMER_PAYMENTS, DE_COMPANY_ID, setup, payment_body)

    (payment,) = (await erp.list_payments(modified_since=watermark, limit=100)).items
    assert payment.amount.amount == Decimal("1000.25")
    assert payment.invoice_ids == [OPEN_INVOICE_ID]
    assert payment.updated_at is not None
    assert payment.updated_at >= watermark
    later = payment.updated_at + dt.timedelta(seconds=1)
    assert (await erp.list_payments(modified_since=later, limit=100)).items == []
    invoice = await erp.get_invoice(OPEN_INVOICE_ID)
    assert invoice.status is InvoiceStatus.PARTIALLY_PAID
    assert invoice.updated_at is not None
    assert invoice.updated_at >= watermark


async def test_overdue_is_a_balance_past_its_due_date(sandbox: Sandbox) -> None:
    erp = BusinessCentralErp(settings(), transport=sandbox.transport, today=lambda: SEED_DATE)
    sandbox.adapters.append(erp)
    overdue = await erp.get_invoice(OVERDUE_INVOICE_ID)
    current = await erp.get_invoice(OPEN_INVOICE_ID)
    draft = await erp.get_invoice(DRAFT_INVOICE_ID)
    assert (overdue.overdue, current.overdue, draft.overdue) == (True, False, False)


async def test_credit_hold_from_blocked(erp: BusinessCentralErp) -> None:
    assert (await erp.get_customer(BLOCKED_CUSTOMER_ID)).credit_hold is True
    assert (await erp.get_customer(MUELLER_CUSTOMER_ID)).credit_hold is False


@pytest.mark.parametrize(
    ("blocked", "hold"), [("_x0020_", False), (" ", False), ("Ship", False), ("Invoice", True)]
)
async def test_every_blocked_value(
    sandbox: Sandbox, erp: BusinessCentralErp, blocked: str, hold: bool
) -> None:
    sandbox.state.records["customers"][MUELLER_CUSTOMER_ID]["blocked"] = blocked
    assert (await erp.get_customer(MUELLER_CUSTOMER_ID)).credit_hold is hold


async def test_an_invoice_in_review_is_left_to_business_centrals_approval(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    sandbox.state.records["salesInvoices"][DRAFT_INVOICE_ID]["status"] = "In Review"
    with pytest.raises(VendorRejected) as refused:
        await erp.post_invoice(DRAFT_INVOICE_ID)
    assert refused.value.vendor_code == "InvoiceInReview"
    assert await sandbox.requests("Microsoft.NAV.post", "POST") == []


async def test_vat_rounded_for_the_document_reaches_the_canonical_invoice(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    """Two 10.03 lines at 19 %: rounding each line's VAT (1.9057) would make 3.82; Business Central rounds
    the VAT of the sum (20.06 x 19 % = 3.8114 -> 3.81) and the invoice owes 23.87."""
    lines = [InvoiceLineInput(description=f"Fee {n}", unit_price=Decimal("10.03")) for n in (1, 2)]
    invoice, _ = await erp.create_invoice(billing_command("bill:p5:2026-03", lines=lines, memo=None))
    (stored,) = sandbox.records("salesInvoices", externalDocumentNumber="BILL:P5:2026-03")
    assert (stored["totalTaxAmount"], stored["totalAmountIncludingTax"]) == (
        Decimal("3.81"),
        Decimal("23.87"),
    )
    assert invoice.subtotal is not None
    assert invoice.tax is not None
    assert invoice.subtotal.amount == sum(line.amount for line in invoice.lines) == Decimal("20.06")
    assert invoice.tax.amount == Decimal("3.81")
    assert invoice.total.amount == invoice.balance.amount == Decimal("23.87")


async def test_a_payment_of_the_net_leaves_the_vat_due_and_the_gross_pays_it(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    invoice, _ = await erp.create_invoice(billing_command("bill:p6:2026-03"))  # 7,840.55 + 1,489.70
    setup = company_setup(DE_COMPANY_ID)
    assert setup is not None
    assert invoice.subtotal is not None
    assert invoice.tax is not None

    def pay(amount: Decimal) -> None:
        body = {"customerId": MUELLER_CUSTOMER_ID, "appliesToInvoiceId": invoice.id, "amount": -amount}
        sandbox.state.create(CUSTOMER_PAYMENTS, DE_COMPANY_ID, setup, body)

    pay(invoice.subtotal.amount)
    partly = await erp.get_invoice(invoice.id)
    assert partly.status is InvoiceStatus.PARTIALLY_PAID
    assert partly.balance.amount == invoice.tax.amount == Decimal("1489.70")
    assert sandbox.records("salesInvoices", id=invoice.id)[0]["remainingAmount"] == Decimal("1489.70")

    pay(invoice.tax.amount)
    paid = await erp.get_invoice(invoice.id)
    assert (paid.status, paid.balance.amount) == (InvoiceStatus.PAID, Decimal(0))
    payments = await erp.list_payments(invoice_id=invoice.id, limit=10)
    assert sum(p.amount.amount for p in payments.items) == invoice.total.amount == Decimal("9330.25")
