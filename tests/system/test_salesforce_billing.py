"""The Salesforce adapter's billing side against the Salesforce sandbox: invoice status written where sales
see it (``Stratum_Invoice__c`` upserted by ``ERP_Invoice_Id__c``), the opportunity's totals, and the deal
terms the billing run prices from."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from apis.config import SalesforceSettings
from contracts.models import CrmInvoiceStatus, CrmInvoiceStatusUpdate, Money, RetainerTerms
from sandboxes.salesforce.data import (
    DEMO_ACCOUNT_ID,
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_MILESTONE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
    READY_RETAINER_OPPORTUNITY_ID,
    UK_ACCOUNT_ID,
)
from system_apis.crm.salesforce import SalesforceCrm
from system_apis.errors import NotFound
from system_apis.vendor_http import RetryPolicy
from tests.system.test_salesforce_adapter import BASE_URL, Sandbox, _sandbox

TODAY = dt.date(2026, 5, 20)
MISSING_OPPORTUNITY_ID = "006Dn00000ZZZZZIAA"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = await _sandbox()
    yield box
    await box.close()


def _crm(sandbox: Sandbox, **settings: Any) -> SalesforceCrm:
    crm = sandbox.crm(**settings)
    # The day an unpaid invoice past its due date counts as overdue on, fixed for the test.
    crm._today = lambda: TODAY
    return crm


@pytest.fixture
def crm(sandbox: Sandbox) -> SalesforceCrm:
    return _crm(sandbox)


def _update(
    erp_invoice_id: str = "INV-1001",
    *,
    opportunity_id: str = READY_OPPORTUNITY_ID,
    status: CrmInvoiceStatus = CrmInvoiceStatus.OPEN,
    total: str = "1000.10",
    balance: str = "1000.10",
    due: dt.date = dt.date(2026, 6, 30),
    at: dt.datetime = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC),
    currency: str = "USD",
) -> CrmInvoiceStatusUpdate:
    return CrmInvoiceStatusUpdate(
        erp_invoice_id=erp_invoice_id,
        opportunity_id=opportunity_id,
        number=f"N-{erp_invoice_id}",
        status=status,
        currency=currency,
        total=Decimal(total),
        balance=Decimal(balance),
        issue_date=dt.date(2026, 5, 1),
        due_date=due,
        erp_updated_at=at,
    )


def _invoices(sandbox: Sandbox, erp_invoice_id: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in sandbox.records("Stratum_Invoice__c").values()
        if erp_invoice_id is None or r["ERP_Invoice_Id__c"] == erp_invoice_id
    ]


async def test_an_invoice_status_becomes_one_record_under_the_deal_and_its_account(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    totals = await crm.upsert_invoice_status(_update())

    [record] = _invoices(sandbox)
    assert record["ERP_Invoice_Id__c"] == "INV-1001"
    assert record["Opportunity__c"] == READY_OPPORTUNITY_ID
    assert record["Account__c"] == DEMO_ACCOUNT_ID  # the deal's account when the update names none
    assert record["Status__c"] == "Open"
    assert record["Total__c"] == 1000.1
    assert record["CurrencyIsoCode"] == "USD"
    assert record["ERP_Updated_At__c"] == "2026-05-01T12:00:00.000+0000"
    assert totals.invoiced == Money(amount=Decimal("1000.10"), currency="USD")
    assert totals.paid.amount == Decimal("0.00")
    assert totals.invoice_count == 1
    opportunity = sandbox.records("Opportunity")[READY_OPPORTUNITY_ID]
    assert opportunity["Invoiced_Amount__c"] == 1000.1
    assert opportunity["Paid_Amount__c"] == 0
    assert opportunity["Overdue_Amount__c"] == 0


async def test_the_same_update_twice_is_one_record_and_no_second_write(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    first = await crm.upsert_invoice_status(_update())
    stamp = _invoices(sandbox)[0]["LastModifiedDate"]
    second = await crm.upsert_invoice_status(_update())

    assert len(_invoices(sandbox)) == 1
    assert second == first
    # Nothing new to say: the record was not written again (no change event for sales to see).
    assert _invoices(sandbox)[0]["LastModifiedDate"] == stamp
    upserts = [
        r
        for r in await sandbox.data_requests()
        if r["method"] == "PATCH" and "/Stratum_Invoice__c/ERP_Invoice_Id__c/" in r["path"]
    ]
    assert len(upserts) == 1


async def test_an_older_update_changes_nothing(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    paid_at = dt.datetime(2026, 5, 10, 9, 0, tzinfo=dt.UTC)
    await crm.upsert_invoice_status(_update(status=CrmInvoiceStatus.PAID, balance="0", at=paid_at))
    # The "open" status from before the payment arrives late (a retried or reordered delivery).
    totals = await crm.upsert_invoice_status(_update(at=paid_at - dt.timedelta(days=9)))

    [record] = _invoices(sandbox)
    assert record["Status__c"] == "Paid"
    assert record["Balance__c"] == 0
    assert totals.paid.amount == Decimal("1000.10")


async def test_a_newer_update_with_the_same_stamp_still_applies(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    # An invoice turns overdue by the calendar, not by an ERP change: same stamp, new status.
    await crm.upsert_invoice_status(_update())
    totals = await crm.upsert_invoice_status(_update(status=CrmInvoiceStatus.OVERDUE))
    assert _invoices(sandbox)[0]["Status__c"] == "Overdue"
    assert totals.overdue.amount == Decimal("1000.10")


async def test_totals_are_exact_to_the_cent_over_every_invoice_of_the_deal(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    opp = READY_MILESTONE_OPPORTUNITY_ID  # a GBP deal
    past = dt.date(2026, 4, 30)  # before TODAY
    updates = [
        _update("INV-A", opportunity_id=opp, currency="GBP", total="0.10", balance="0.10", due=past),
        _update("INV-B", opportunity_id=opp, currency="GBP", total="0.20", balance="0.05"),
        _update(
            "INV-C",
            opportunity_id=opp,
            currency="GBP",
            total="62100.15",
            balance="0",
            status=CrmInvoiceStatus.PAID,
        ),
        _update("INV-D", opportunity_id=opp, currency="GBP", total="999.99", status=CrmInvoiceStatus.VOID),
        _update(
            "INV-E",
            opportunity_id=opp,
            currency="GBP",
            total="10.01",
            balance="3.33",
            status=CrmInvoiceStatus.PARTIALLY_PAID,
        ),
    ]
    for update in updates:
        totals = await crm.upsert_invoice_status(update)

    # Voided D does not count; A is past due while owing (overdue though its ERP status says open).
    assert totals.currency == "GBP"
    assert totals.invoiced.amount == Decimal("62110.46")
    assert totals.paid.amount == Decimal("62110.46") - Decimal("0.10") - Decimal("0.05") - Decimal("3.33")
    assert totals.overdue.amount == Decimal("0.10")
    assert totals.invoice_count == 4
    opportunity = sandbox.records("Opportunity")[opp]
    assert Decimal(str(opportunity["Invoiced_Amount__c"])) == Decimal("62110.46")
    assert Decimal(str(opportunity["Paid_Amount__c"])) == Decimal("62106.98")
    assert Decimal(str(opportunity["Overdue_Amount__c"])) == Decimal("0.10")


async def test_an_upsert_whose_answer_was_lost_makes_one_record(sandbox: Sandbox) -> None:
    crm = _crm(sandbox, timeout_seconds=0.3, retry=RetryPolicy(max_attempts=3))
    await crm.get_customer(DEMO_ACCOUNT_ID)  # the token first, so only the upsert is lost
    await sandbox.fault(
        kind="lost",
        method="PATCH",
        path_pattern="/Stratum_Invoice__c/ERP_Invoice_Id__c/",
        latency_ms=1500,
        times=1,
    )

    totals = await crm.upsert_invoice_status(_update())

    assert len(_invoices(sandbox)) == 1
    assert totals.invoice_count == 1
    upserts = [r for r in await sandbox.data_requests() if "/ERP_Invoice_Id__c/" in r["path"]]
    assert len(upserts) == 2  # the lost one did its work; the retry updated the same record


async def test_a_missing_opportunity_is_not_found(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    with pytest.raises(NotFound):
        await crm.upsert_invoice_status(_update(opportunity_id=MISSING_OPPORTUNITY_ID))
    assert _invoices(sandbox) == []


async def test_the_customer_given_is_the_account_written(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    update = _update()
    update = CrmInvoiceStatusUpdate(**{**_as_dict(update), "customer_id": UK_ACCOUNT_ID})
    await crm.upsert_invoice_status(update)
    assert _invoices(sandbox)[0]["Account__c"] == UK_ACCOUNT_ID


def _as_dict(update: CrmInvoiceStatusUpdate) -> dict[str, Any]:
    return {name: getattr(update, name) for name in update.__struct_fields__}


async def test_deal_terms_carry_the_retainer_and_payment_terms(crm: SalesforceCrm) -> None:
    retainer = await crm.get_opportunity(READY_RETAINER_OPPORTUNITY_ID)
    assert retainer.retainer == RetainerTerms(
        monthly_fee=Money(amount=Decimal("4000.00"), currency="USD"), included_hours=Decimal(20)
    )
    assert retainer.payment_terms_days == 15
    time_and_materials = await crm.get_opportunity(READY_OPPORTUNITY_ID)
    assert time_and_materials.retainer is None
    assert time_and_materials.payment_terms_days == 30
    assert (await crm.get_opportunity(READY_MILESTONE_OPPORTUNITY_ID)).payment_terms_days == 45
    assert (await crm.get_opportunity(READY_FIXED_FEE_OPPORTUNITY_ID)).payment_terms_days == 30


class _Recording(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox and keeps them, headers and all."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


async def test_every_write_names_stratum_as_the_client_for_echo_suppression(sandbox: Sandbox) -> None:
    recording = _Recording(sandbox.transport)
    crm = SalesforceCrm(SalesforceSettings(base_url=BASE_URL), transport=recording, sleep=sandbox.no_sleep)
    crm._today = lambda: TODAY
    try:
        await crm.upsert_invoice_status(_update())
    finally:
        await crm.close()
    writes = [r for r in recording.requests if r.method == "PATCH"]
    assert len(writes) == 2  # the invoice upsert and the opportunity's totals
    # Salesforce reports this client id in Change Data Capture's changeOrigin.
    assert all(r.headers["Sforce-Call-Options"] == "client=stratum" for r in writes)


class _WriterInBetween(_Recording):
    """Before the adapter's conditional update reaches Salesforce, another writer stores a newer state."""

    def __init__(self, inner: httpx.AsyncBaseTransport, sandbox: Sandbox) -> None:
        super().__init__(inner)
        self.sandbox = sandbox
        self.interfered = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and "If-Unmodified-Since" in request.headers and not self.interfered:
            self.interfered = True
            [record] = _invoices(self.sandbox)
            later = dt.datetime.fromisoformat(record["LastModifiedDate"]) + dt.timedelta(seconds=5)
            stamp = later.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
            record.update(
                Status__c="Paid",
                Balance__c=0.0,
                ERP_Updated_At__c="2026-05-15T00:00:00.000+0000",
                LastModifiedDate=stamp,
                SystemModstamp=stamp,
            )
        return await super().handle_async_request(request)


async def test_a_newer_state_written_between_read_and_write_is_kept(sandbox: Sandbox) -> None:
    seeded = _crm(sandbox)
    await seeded.upsert_invoice_status(_update())
    transport = _WriterInBetween(sandbox.transport, sandbox)
    crm = SalesforceCrm(SalesforceSettings(base_url=BASE_URL), transport=transport, sleep=sandbox.no_sleep)
    crm._today = lambda: TODAY
    try:
        # Stamped after the first state, before the one the other writer stores meanwhile.
        totals = await crm.upsert_invoice_status(
            _update(status=CrmInvoiceStatus.OVERDUE, at=dt.datetime(2026, 5, 5, tzinfo=dt.UTC))
        )
    finally:
        await crm.close()

    assert transport.interfered
    [record] = _invoices(sandbox)
    assert record["Status__c"] == "Paid"  # the 412 made the adapter read again and see it was stale
    assert totals.paid.amount == Decimal("1000.10")
    conditional = [r for r in transport.requests if "If-Unmodified-Since" in r.headers]
    assert len(conditional) == 1


async def test_a_conditional_update_whose_answer_was_lost_is_done_once(sandbox: Sandbox) -> None:
    crm = _crm(sandbox, timeout_seconds=0.3, retry=RetryPolicy(max_attempts=3))
    await crm.upsert_invoice_status(_update())
    [record] = _invoices(sandbox)
    await sandbox.fault(
        kind="lost",
        method="PATCH",
        path_pattern=f"/Stratum_Invoice__c/{record['Id']}$",
        latency_ms=1500,
        times=1,
    )
    # A later second, so the retry's If-Unmodified-Since sees the lost attempt's change.
    sandbox.app.state.sandbox.clock = _later(sandbox.app.state.sandbox.clock, seconds=2)

    paid_at = dt.datetime(2026, 5, 10, tzinfo=dt.UTC)
    totals = await crm.upsert_invoice_status(_update(status=CrmInvoiceStatus.PAID, balance="0", at=paid_at))

    [after] = _invoices(sandbox)
    assert after["Id"] == record["Id"]
    assert after["Status__c"] == "Paid"
    assert totals.paid.amount == Decimal("1000.10")
    updates = [
        r for r in await sandbox.data_requests() if r["path"].endswith(f"/Stratum_Invoice__c/{record['Id']}")
    ]
    # The lost attempt did the work; its retry met 412 (the record had changed), and a fresh read then
    # found nothing left to write.
    assert [r.get("status") for r in updates][-1] == 412


def _later(clock: Any, *, seconds: float) -> Any:
    return lambda: clock() + seconds
