"""Invoice status back, on the whole gateway in process with the sandboxes: invoices billed for activated
projects in NetSuite (US01) and Business Central (DE01), payments entered in the ERP as finance would, and
the sync bringing each change to the CRM and the PSA once, with one business event per change."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from apis.config import Settings
from contracts.models.billing import UNBILLED_AGE_BUCKETS
from process_apis.invoice_status import (
    WATERMARK_KEY,
    crm_status,
    parse_billing_key,
)
from sandboxes.salesforce.data import READY_FIXED_FEE_OPPORTUNITY_ID, READY_OPPORTUNITY_ID

# The run database outage fixtures (PostgreSQL behind a proxy the test controls).
from tests.process.test_run_database_outage import database, proxy  # noqa: F401
from tests.sandboxes.test_business_central_sandbox import API as API_ROOT
from tests.sandboxes.test_business_central_sandbox import BASE, DE, TOKEN_PATH, token_form
from tests.system.test_netsuite_adapter import API
from tests.system.test_netsuite_adapter import Sandbox as NetSuiteBox
from tests.tcp_proxy import TcpProxy

SYNCS = "/process/v1/invoice-status-syncs"
BC_NOTIFICATIONS = "/process/v1/erp-notifications/business-central"
VENDOR = {"retry_max_attempts": 1, "breaker_failure_threshold": 0}
WORKFLOWS = {
    "step_backoff_base_seconds": 0.05,
    "step_backoff_max_seconds": 0.2,
    "step_max_attempts": 3,
    "poll_interval_seconds": 0.1,
}
FUTURE = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)
STATUS_EVENTS = {"invoice.paid", "invoice.partially_paid", "invoice.overdue"}


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(
        make_settings(
            erp_vendor="netsuite",
            erp_by_legal_entity={"DE01": "business_central"},
            workflows=WORKFLOWS,
            netsuite=VENDOR,
            kantata=VENDOR,
            salesforce=VENDOR,
            invoice_status={
                "schedule_enabled": False,
                "business_central_client_state": "bc-secret",
                "business_central_subscriptions": False,
            },
        )
    )


def _headers(gw: Any, scopes: str, **extra: str) -> dict[str, str]:
    return {**gw.auth(scopes), "Idempotency-Key": uuid.uuid4().hex, **extra}


async def _activated(gw: Any, opportunity_id: str) -> dict[str, Any]:
    response = await gw.client.post(
        "/process/v1/project-activations",
        json={"opportunity_id": opportunity_id},
        headers=_headers(gw, "process:run", Prefer="wait=30"),
    )
    run = response.json()
    assert run["state"] == "completed", run
    result: dict[str, Any] = run["result"]
    return result


async def _bill(
    gw: Any, project: dict[str, Any], *, currency: str, amount: str, due: dt.date, period: str = "2026-11"
) -> dict[str, Any]:
    """What the billing run does: the ERP invoice and the PSA invoice, both under the billing key."""
    key = f"bill:{project['psa_project_id']}:{period}"
    erp = await gw.client.post(
        "/system/v1/erp/invoices",
        json={
            "external_key": key,
            "customer_id": project["erp_customer_id"],
            "project_id": project["erp_project_id"],
            "currency": currency,
            "issue_date": (due - dt.timedelta(days=30)).isoformat(),
            "due_date": due.isoformat(),
            "lines": [{"description": f"Consulting, {period}", "unit_price": amount}],
        },
        headers=_headers(gw, "system:write"),
    )
    assert erp.status_code == 201, erp.text
    invoice: dict[str, Any] = erp.json()
    psa = await gw.client.post(
        "/system/v1/psa/invoices",
        json={
            "external_key": key,
            "project_id": project["psa_project_id"],
            "currency": currency,
            "invoice_date": (due - dt.timedelta(days=30)).isoformat(),
            "due_date": due.isoformat(),
            "fee_items": [{"description": f"Consulting, {period}", "amount": amount}],
            "draft": True,
        },
        headers=_headers(gw, "system:write"),
    )
    assert psa.status_code in (200, 201), psa.text
    final = await gw.client.post(
        f"/system/v1/psa/invoices/{psa.json()['id']}/finalize",
        json={"erp_invoice_id": invoice["id"], "erp_invoice_number": invoice["number"]},
        headers=_headers(gw, "system:write"),
    )
    assert final.status_code == 200, final.text
    invoice["psa_invoice_id"] = psa.json()["id"]
    return invoice


async def _netsuite_payment(gw: Any, invoice_id: str, customer_id: str, amount: str) -> None:
    """Finance enters a customer payment in NetSuite (REST record API, customerPayment with apply)."""
    await _netsuite_split_payment(gw, customer_id, amount, {invoice_id: amount})


async def _netsuite_split_payment(gw: Any, customer_id: str, total: str, applied: dict[str, str]) -> str:
    """One customerPayment applied to several invoices, an amount each (Oracle's REST sample, "Customer
    Payment": ``apply.items[{doc, apply, amount}]`` under ``payment``); answers the payment's id."""
    mount = next(m for m in gw.gateway.mounts if m.prefix == "/sandboxes/netsuite")
    box = NetSuiteBox(mount.app)
    erp = box.erp()
    token = await erp.auth.access_token()
    async with httpx.AsyncClient(transport=box.transport, base_url=API) as client:
        response = await client.post(
            "/record/v1/customerPayment",
            json={
                "customer": {"id": customer_id},
                "payment": float(total),  # the vendor's JSON: a number
                "apply": {
                    "items": [
                        {"doc": {"id": invoice_id}, "apply": True, "amount": float(amount)}
                        for invoice_id, amount in applied.items()
                    ]
                },
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    await erp.close()
    await box.admin.aclose()
    assert response.status_code == 204, response.text
    return response.headers["location"].rsplit("/", 1)[-1]


async def _bc_client(gw: Any) -> httpx.AsyncClient:
    mount = next(m for m in gw.gateway.mounts if m.prefix == "/sandboxes/business-central")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=mount.app), base_url=BASE)
    token = (await client.post(TOKEN_PATH, data=token_form())).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


async def _bc_payment(gw: Any, invoice_id: str, customer_id: str, amount: str) -> None:
    """Finance posts a customer payment in Business Central (customerPayments, applied to the invoice;
    a payment is a credit: a negative amount, as in tests/sandboxes/test_business_central_billing.py)."""
    client = await _bc_client(gw)
    try:
        response = await client.post(
            f"{DE}/customerPayments",
            json={
                "customerId": customer_id,
                "appliesToInvoiceId": invoice_id,
                "amount": -float(amount),
            },
        )
    finally:
        await client.aclose()
    assert response.status_code == 201, response.text


async def _sync(gw: Any) -> dict[str, Any]:
    response = await gw.client.post(SYNCS, json={}, headers=_headers(gw, "process:run", Prefer="wait=30"))
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    assert run["state"] == "completed", run
    assert run["links"]["self"] == f"{SYNCS}/{run['id']}"
    return run


async def _events(gw: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = await gw.client.get("/process/v1/events", params=params, headers=gw.auth("process:read"))
        assert page.status_code == 200, page.text
        events.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if not cursor or not page.json()["items"]:
            return [e for e in events if e["type"] in STATUS_EVENTS]


def _crm_invoice(gw: Any, erp_invoice_id: str) -> dict[str, Any]:
    records = gw.sandbox_state("salesforce").records["Stratum_Invoice__c"].values()
    (record,) = [r for r in records if r.get("ERP_Invoice_Id__c") == erp_invoice_id]
    return dict(record)


def _psa_payment_notes(gw: Any, psa_invoice_id: str) -> list[str]:
    refs = gw.sandbox_state("kantata").records["external_references"].values()
    return sorted(
        str(r["service_model_ref"])
        for r in refs
        if r.get("service_model") == "Payment" and str(r.get("subject_id")) == str(psa_invoice_id)
    )


def _psa_paid_in_full(gw: Any, psa_invoice_id: str) -> int:
    payments = gw.sandbox_state("kantata").records["external_payments"].values()
    return len([p for p in payments if str(p.get("invoice_id")) == str(psa_invoice_id)])


# --- the pure part ----------------------------------------------------------------------------------------


def test_a_billing_key_names_the_psa_project_and_the_period() -> None:
    assert parse_billing_key("bill:3001:2026-02") == ("3001", "2026-02")
    assert parse_billing_key("bill:a:b:2026-02") == ("a:b", "2026-02")
    # Business Central reads externalDocumentNumber back in upper case.
    assert parse_billing_key("BILL:3001:2026-02") == ("3001", "2026-02")
    assert parse_billing_key("inv-de-1") is None
    assert parse_billing_key(None) is None
    assert parse_billing_key("bill:3001") is None


def test_the_crm_status_follows_the_canonical_status_and_the_overdue_flag() -> None:
    from contracts.models import Invoice, InvoiceStatus
    from contracts.models.common import Money

    def invoice(status: InvoiceStatus, balance: str, *, overdue: bool = False) -> Invoice:
        return Invoice(
            id="1",
            number=None,
            customer_id="c",
            status=status,
            currency="USD",
            total=Money(amount=Decimal("100.00"), currency="USD"),
            balance=Money(amount=Decimal(balance), currency="USD"),
            overdue=overdue,
        )

    assert crm_status(invoice(InvoiceStatus.DRAFT, "100.00")) is None
    assert crm_status(invoice(InvoiceStatus.POSTED, "100.00")).value == "open"  # type: ignore[union-attr]
    assert crm_status(invoice(InvoiceStatus.PARTIALLY_PAID, "40.00")).value == "partially_paid"  # type: ignore[union-attr]
    assert crm_status(invoice(InvoiceStatus.PARTIALLY_PAID, "40.00", overdue=True)).value == "overdue"  # type: ignore[union-attr]
    assert crm_status(invoice(InvoiceStatus.PAID, "0.00")).value == "paid"  # type: ignore[union-attr]
    assert crm_status(invoice(InvoiceStatus.VOID, "0.00")).value == "void"  # type: ignore[union-attr]


# --- NetSuite (US01) --------------------------------------------------------------------------------------


async def test_netsuite_payments_reach_the_crm_and_the_psa_once_each_with_one_event_per_change(
    gw: Any,
) -> None:
    project = await _activated(gw, READY_OPPORTUNITY_ID)
    invoice = await _bill(gw, project, currency="USD", amount="1000.00", due=FUTURE)
    customer = invoice["customer_id"]

    # The billing run's own invoice: the CRM sees it open, and nothing is announced.
    first = await _sync(gw)
    assert invoice["id"] in first["result"]["applied"]
    record = _crm_invoice(gw, invoice["id"])
    assert (record["Status__c"], Decimal(str(record["Balance__c"]))) == ("Open", Decimal("1000.00"))
    assert await _events(gw) == []
    # Re-reading the unchanged invoice (the overlap) does nothing at all.
    assert invoice["id"] not in (await _sync(gw))["result"]["applied"]

    await _netsuite_payment(gw, invoice["id"], customer, "400.00")
    partly = await _sync(gw)
    assert invoice["id"] in partly["result"]["applied"]
    record = _crm_invoice(gw, invoice["id"])
    assert (record["Status__c"], Decimal(str(record["Balance__c"]))) == ("Partially Paid", Decimal("600.00"))
    assert len(_psa_payment_notes(gw, invoice["psa_invoice_id"])) == 1
    assert _psa_paid_in_full(gw, invoice["psa_invoice_id"]) == 0

    await _netsuite_payment(gw, invoice["id"], customer, "600.00")
    await _sync(gw)
    record = _crm_invoice(gw, invoice["id"])
    assert (record["Status__c"], Decimal(str(record["Balance__c"]))) == ("Paid", Decimal("0"))
    notes = _psa_payment_notes(gw, invoice["psa_invoice_id"])
    assert len(notes) == len(set(notes)) == 2
    assert _psa_paid_in_full(gw, invoice["psa_invoice_id"]) == 1
    # The deal's totals on the opportunity.
    opportunity = gw.sandbox_state("salesforce").records["Opportunity"][READY_OPPORTUNITY_ID]
    assert Decimal(str(opportunity["Invoiced_Amount__c"])) >= Decimal("1000.00")

    events = await _events(gw)
    assert sorted(e["type"] for e in events) == ["invoice.paid", "invoice.partially_paid"]
    assert {e["subject"] for e in events} == {invoice["id"]}
    paid = next(e for e in events if e["type"] == "invoice.paid")
    assert paid["data"]["billing_key"] == f"bill:{project['psa_project_id']}:2026-11"
    assert paid["data"]["opportunity_id"] == READY_OPPORTUNITY_ID

    # Running again changes and publishes nothing new, in either system.
    again = await _sync(gw)
    assert again["result"]["applied"] == []
    assert len(await _events(gw)) == 2
    assert len(_psa_payment_notes(gw, invoice["psa_invoice_id"])) == 2
    assert _psa_paid_in_full(gw, invoice["psa_invoice_id"]) == 1


def _psa_payment_messages(gw: Any, psa_invoice_id: str) -> list[str]:
    """What Kantata shows of each ERP payment on the invoice ("{amount} {currency} paid on ...; balance
    ...", system_apis/psa/kantata_mapping.payment_reference), in payment id order."""
    refs = gw.sandbox_state("kantata").records["external_references"].values()
    found = [
        r
        for r in refs
        if r.get("service_model") == "Payment" and str(r.get("subject_id")) == str(psa_invoice_id)
    ]
    return [str(r["external_message"]) for r in sorted(found, key=lambda r: int(r["service_model_ref"]))]


async def test_a_payment_split_over_two_invoices_tells_each_invoice_only_its_own_share(gw: Any) -> None:
    """One NetSuite customerPayment of 1,500.00 applied 1,000.00 to invoice A and 500.00 to invoice B
    (after an earlier 200.00 on B, both read by the same sync): each PSA invoice is told its own share, the
    balance after each payment is computed from the shares, and the CRM and the events follow."""
    project = await _activated(gw, READY_OPPORTUNITY_ID)
    a = await _bill(gw, project, currency="USD", amount="1000.00", due=FUTURE, period="2026-10")
    b = await _bill(gw, project, currency="USD", amount="800.00", due=FUTURE, period="2026-11")
    customer = a["customer_id"]
    await _sync(gw)

    first = await _netsuite_split_payment(gw, customer, "200.00", {b["id"]: "200.00"})
    split = await _netsuite_split_payment(gw, customer, "1500.00", {a["id"]: "1000.00", b["id"]: "500.00"})
    # The vendor's own record holds the split, as the REST record API answers it.
    stored = gw.sandbox_state("netsuite").records["customerPayment"][split]
    assert sorted((line["doc"], line["amount"]) for line in stored["apply"]) == sorted(
        [(a["id"], 1000.0), (b["id"], 500.0)]
    )
    synced = await _sync(gw)
    assert {a["id"], b["id"]} <= set(synced["result"]["applied"])

    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert _psa_payment_messages(gw, a["psa_invoice_id"]) == [
        f"1000.00 USD paid on {today}; balance 0.00 USD"
    ]
    assert _psa_payment_messages(gw, b["psa_invoice_id"]) == [
        f"200.00 USD paid on {today}; balance 600.00 USD",
        f"500.00 USD paid on {today}; balance 100.00 USD",
    ]
    assert int(first) < int(split)
    assert _psa_paid_in_full(gw, a["psa_invoice_id"]) == 1
    assert _psa_paid_in_full(gw, b["psa_invoice_id"]) == 0

    crm_a, crm_b = _crm_invoice(gw, a["id"]), _crm_invoice(gw, b["id"])
    assert (crm_a["Status__c"], Decimal(str(crm_a["Balance__c"]))) == ("Paid", Decimal("0"))
    assert (crm_b["Status__c"], Decimal(str(crm_b["Balance__c"]))) == ("Partially Paid", Decimal("100.00"))
    events = await _events(gw)
    assert sorted((e["type"], e["subject"]) for e in events) == sorted(
        [("invoice.paid", a["id"]), ("invoice.partially_paid", b["id"])]
    )
    b_event = next(e for e in events if e["subject"] == b["id"])
    assert sorted(b_event["data"]["erp_payment_ids"]) == sorted([first, split])

    # Once each: another sync tells nothing again.
    assert (await _sync(gw))["result"]["applied"] == []
    assert len(await _events(gw)) == 2
    assert len(_psa_payment_messages(gw, a["psa_invoice_id"])) == 1
    assert len(_psa_payment_messages(gw, b["psa_invoice_id"])) == 2


async def test_an_overdue_invoice_is_announced_once(gw: Any) -> None:
    project = await _activated(gw, READY_OPPORTUNITY_ID)
    invoice = await _bill(gw, project, currency="USD", amount="250.00", due=dt.date(2026, 1, 31))
    await _sync(gw)
    await _sync(gw)
    assert _crm_invoice(gw, invoice["id"])["Status__c"] == "Overdue"
    events = await _events(gw)
    assert [e["type"] for e in events] == ["invoice.overdue"]


async def test_the_watermark_moves_only_to_the_start_of_a_sync_that_applied_its_changes(gw: Any) -> None:
    project = await _activated(gw, READY_OPPORTUNITY_ID)
    invoice = await _bill(gw, project, currency="USD", amount="300.00", due=FUTURE)
    run = await _sync(gw)
    watermark = (await gw.runtime.store.get(WATERMARK_KEY)).decode()
    assert watermark == run["result"]["watermark"]
    # The watermark is the sync's start, taken before it read: a change made after it is later than it.
    assert dt.datetime.fromisoformat(watermark) <= dt.datetime.fromisoformat(
        run["created_at"]
    ) + dt.timedelta(seconds=5)
    # A change landing after that start is read by the next sync (its updated_at is after the watermark).
    await _netsuite_payment(gw, invoice["id"], invoice["customer_id"], "300.00")
    second = await _sync(gw)
    assert invoice["id"] in second["result"]["applied"]
    assert dt.datetime.fromisoformat(second["result"]["read_from"]) < dt.datetime.fromisoformat(watermark)
    assert _crm_invoice(gw, invoice["id"])["Status__c"] == "Paid"


# --- Business Central (DE01) ------------------------------------------------------------------------------


async def test_business_central_payments_reach_the_crm_and_the_psa_once_each(gw: Any) -> None:
    project = await _activated(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    assert project["erp_customer_id"].startswith("business_central:")
    invoice = await _bill(gw, project, currency="EUR", amount="2000.00", due=FUTURE)
    assert invoice["id"].startswith("business_central:")
    guid = invoice["id"].split(":", 1)[1]
    customer_guid = invoice["customer_id"].split(":", 1)[1]
    opened = await _sync(gw)
    assert invoice["id"] in opened["result"]["applied"], opened["result"]

    # The customer owes 2,000.00 and Business Central's 19 % VAT: 2,380.00, paid in two parts.
    assert (invoice["subtotal"]["amount"], invoice["tax"]["amount"]) == ("2000.00", "380.00")
    assert invoice["total"]["amount"] == invoice["balance"]["amount"] == "2380.00"
    record = _crm_invoice(gw, invoice["id"])
    assert (Decimal(str(record["Total__c"])), Decimal(str(record["Balance__c"]))) == (Decimal("2380.00"),) * 2
    await _bc_payment(gw, guid, customer_guid, "500.00")
    await _sync(gw)
    record = _crm_invoice(gw, invoice["id"])
    assert (record["Status__c"], Decimal(str(record["Balance__c"]))) == ("Partially Paid", Decimal("1880.00"))
    await _bc_payment(gw, guid, customer_guid, "1880.00")
    await _sync(gw)
    await _sync(gw)
    assert _crm_invoice(gw, invoice["id"])["Status__c"] == "Paid"
    notes = _psa_payment_notes(gw, invoice["psa_invoice_id"])
    assert len(notes) == len(set(notes)) == 2
    assert _psa_paid_in_full(gw, invoice["psa_invoice_id"]) == 1
    events = await _events(gw)
    assert sorted(e["type"] for e in events) == ["invoice.paid", "invoice.partially_paid"]


async def test_a_business_central_notification_starts_a_sync_after_the_handshake(gw: Any) -> None:
    token = "validation-" + uuid.uuid4().hex
    handshake = await gw.client.post(BC_NOTIFICATIONS, params={"validationToken": token})
    assert handshake.status_code == 200
    assert handshake.text == token
    assert handshake.headers["content-type"].startswith("text/plain")

    def delivery(client_state: str, resource: str = "salesInvoices") -> dict[str, Any]:
        return {
            "value": [
                {
                    "subscriptionId": "stratum",
                    "clientState": client_state,
                    "expirationDateTime": "2099-01-01T00:00:00Z",
                    "resource": f"api/v2.0/companies(1)/{resource}(2)",
                    "changeType": "updated",
                    "lastModifiedDateTime": "2026-12-01T00:00:00Z",
                }
            ]
        }

    refused = await gw.client.post(BC_NOTIFICATIONS, json=delivery("not-the-secret"))
    assert refused.status_code == 401, refused.text
    ignored = await gw.client.post(BC_NOTIFICATIONS, json=delivery("bc-secret", "customers"))
    assert (ignored.status_code, ignored.json()["outcome"]) == (202, "ignored")

    project = await _activated(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    invoice = await _bill(gw, project, currency="EUR", amount="700.00", due=FUTURE)
    accepted = await gw.client.post(BC_NOTIFICATIONS, json=delivery("bc-secret"))
    assert accepted.status_code == 202, accepted.text
    receipt = accepted.json()
    assert receipt["outcome"] in ("started", "joined")
    # A burst of notifications while that sync is queued or running joins it: one run.
    burst = await gw.client.post(BC_NOTIFICATIONS, json=delivery("bc-secret"))
    assert burst.json()["run_id"] == receipt["run_id"]
    run = await gw.client.get(
        f"{SYNCS}/{receipt['run_id']}", headers={**gw.auth("process:read"), "Prefer": "wait=30"}
    )
    assert run.json()["state"] == "completed", run.json()
    assert invoice["id"] in run.json()["result"]["applied"]
    assert _crm_invoice(gw, invoice["id"])["Status__c"] == "Open"


async def test_starting_a_sync_needs_process_run_and_an_idempotency_key(gw: Any) -> None:
    no_key = await gw.client.post(SYNCS, json={}, headers=gw.auth("process:run"))
    assert no_key.status_code == 428, no_key.text
    wrong_scope = await gw.client.post(SYNCS, json={}, headers=_headers(gw, "process:read"))
    assert wrong_scope.status_code == 403
    headers = _headers(gw, "process:run")
    first = await gw.client.post(SYNCS, json={}, headers=headers)
    second = await gw.client.post(SYNCS, json={}, headers=headers)
    assert first.json()["id"] == second.json()["id"]
    missing = await gw.client.get(f"{SYNCS}/iss-nothing", headers=gw.auth("process:read"))
    assert missing.status_code == 404


# --- the schedule, and a state store outage ---------------------------------------------------------------


async def test_the_schedule_starts_syncs_on_its_own(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    gw = await make_gateway(
        make_settings(
            workflows=WORKFLOWS,
            invoice_status={
                "schedule_enabled": True,
                "schedule_cron": "*/2 * * * * *",
                "business_central_subscriptions": False,
            },
        )
    )
    deadline = asyncio.get_running_loop().time() + 20
    runs: list[dict[str, Any]] = []
    while asyncio.get_running_loop().time() < deadline:
        listing = await gw.client.get(
            "/process/v1/runs",
            params={"workflow": "invoice_status_sync", "state": "completed"},
            headers=gw.auth("process:read"),
        )
        runs = listing.json()["items"]
        if runs:
            break
        await asyncio.sleep(0.5)
    assert runs, "no scheduled sync completed within 20 s"
    assert runs[0]["trigger"] == "schedule"
    assert runs[0]["id"].startswith("iss-")


async def test_a_state_store_outage_parks_the_sync_without_moving_the_watermark(
    gw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apis.state import StateStoreUnavailable

    project = await _activated(gw, READY_OPPORTUNITY_ID)
    invoice = await _bill(gw, project, currency="USD", amount="800.00", due=FUTURE)
    first = await _sync(gw)
    watermark = first["result"]["watermark"]
    await _netsuite_payment(gw, invoice["id"], invoice["customer_id"], "800.00")

    store = gw.runtime.store
    real_get = store.get
    down = True

    async def get(key: str) -> bytes | None:
        if down and key.startswith("invoice-status:applied:"):
            raise StateStoreUnavailable("redis down (test)")
        return await real_get(key)

    monkeypatch.setattr(store, "get", get)
    response = await gw.client.post(SYNCS, json={}, headers=_headers(gw, "process:run", Prefer="wait=30"))
    run = response.json()
    assert run["state"] == "dead_letter", run
    # Nothing was applied, and the next sync still starts from the old watermark.
    assert (await store.get(WATERMARK_KEY)).decode() == watermark
    assert _crm_invoice(gw, invoice["id"])["Status__c"] == "Open"
    assert await _events(gw) == []

    down = False
    replay = await gw.client.post(
        f"/process/v1/runs/{run['id']}/replay", headers=_headers(gw, "process:admin")
    )
    assert replay.status_code == 202, replay.text
    done = await gw.client.get(
        f"{SYNCS}/{run['id']}", headers={**gw.auth("process:read"), "Prefer": "wait=30"}
    )
    assert done.json()["state"] == "completed", done.json()
    assert _crm_invoice(gw, invoice["id"])["Status__c"] == "Paid"
    assert [e["type"] for e in await _events(gw)] == ["invoice.paid"]
    assert _psa_paid_in_full(gw, invoice["psa_invoice_id"]) == 1
    assert (await store.get(WATERMARK_KEY)).decode() > watermark


async def test_a_payment_landing_during_a_sync_is_picked_by_the_next_one(
    gw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from process_apis.saga import services

    project = await _activated(gw, READY_OPPORTUNITY_ID)
    invoice = await _bill(gw, project, currency="USD", amount="900.00", due=FUTURE)
    await _sync(gw)
    system = services().system
    real = system.list_payments
    landed: list[bool] = []

    async def list_payments(**kwargs: Any) -> Any:
        page = await real(**kwargs)
        if not landed:
            # Finance posts a payment after the sync read the payments, before it moves the watermark.
            landed.append(True)
            await _netsuite_payment(gw, invoice["id"], invoice["customer_id"], "900.00")
        return page

    monkeypatch.setattr(system, "list_payments", list_payments)
    during = await _sync(gw)
    assert landed
    monkeypatch.setattr(system, "list_payments", real)
    after = await _sync(gw)
    # The sync that was running had already read past it; the next one reads from before its start.
    assert invoice["id"] not in during["result"]["applied"]
    assert invoice["id"] in after["result"]["applied"]
    assert _crm_invoice(gw, invoice["id"])["Status__c"] == "Paid"
    assert _psa_paid_in_full(gw, invoice["psa_invoice_id"]) == 1
    assert [e["type"] for e in await _events(gw)] == ["invoice.paid"]


# --- metrics ----------------------------------------------------------------------------------------------


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    found: list[tuple[dict[str, str], float]] = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            found.append((labels, float(line.rsplit(" ", 1)[1])))
    return found


async def test_sync_lag_and_unbilled_work_reach_metrics(gw: Any) -> None:
    project = await _activated(gw, READY_OPPORTUNITY_ID)
    invoice = await _bill(gw, project, currency="USD", amount="120.00", due=FUTURE)
    before = _samples((await gw.client.get("/metrics")).text, "stratum_invoice_status_sync_lag_seconds_count")
    await _netsuite_payment(gw, invoice["id"], invoice["customer_id"], "20.00")
    await _sync(gw)
    text = (await gw.client.get("/metrics")).text
    after = _samples(text, "stratum_invoice_status_sync_lag_seconds_count")
    # The invoice and its payment: two changes brought to the CRM (at least; the registry is the process's).
    assert after[0][1] >= (before[0][1] if before else 0) + 2

    # The sync's unbilled pass ran (the first sync of the hour): every sample is a currency and a bucket.
    gauge = _samples(text, "stratum_unbilled_approved_work")
    assert gauge
    assert {labels["age"] for labels, _ in gauge} <= set(UNBILLED_AGE_BUCKETS)
    assert all(value >= 0 for _, value in gauge)


class _FakePsa:
    """The two system client calls the unbilled pass makes, over fixed projects and items."""

    def __init__(self, today: dt.date) -> None:
        from contracts.models.billing import BillableItem, BillableItemKind
        from contracts.models.common import Money

        def item(project: str, n: int, days: int, amount: str | None, currency: str, **kw: Any) -> Any:
            return BillableItem(
                id=f"{project}-{n}",
                kind=BillableItemKind.TIME,
                project_id=project,
                date=today - dt.timedelta(days=days),
                description="work",
                amount=Money(amount=Decimal(amount), currency=currency) if amount else None,
                **kw,
            )

        self.projects = {"p1": "active", "p2": "active", "p3": "completed"}
        self.items = {
            "p1": [
                item("p1", 1, 3, "100.10", "USD"),
                item("p1", 2, 31, "50.00", "USD"),
                item("p1", 3, 95, "7.00", "USD"),
                item("p1", 4, 10, "999.00", "USD", invoiced=True),
                item(
                    "p1",
                    5,
                    61,
                    None,
                    "USD",
                    quantity=Decimal("2.5"),
                    rate=Money(amount=Decimal("10.00"), currency="USD"),
                ),
            ],
            "p2": [item("p2", 1, 30, "20.00", "EUR")],
            "p3": [item("p3", 1, 1, "5000.00", "EUR")],
        }

    async def list_psa_projects(self, **_: Any) -> Any:
        from contracts.models.delivery import ProjectPage

        projects = [
            {"id": pid, "name": pid, "status": status, "currency": "USD"}
            for pid, status in self.projects.items()
        ]
        import msgspec

        return msgspec.convert({"items": projects, "next_cursor": None}, ProjectPage, strict=False)

    async def list_billable_items(self, project_id: str, **_: Any) -> Any:
        from contracts.models.billing import BillableItemPage

        return BillableItemPage(items=self.items[project_id])


async def test_unbilled_work_sums_uninvoiced_priced_items_of_active_projects_by_currency_and_age() -> None:
    from process_apis import saga
    from process_apis.invoice_status import unbilled_work

    today = dt.date(2026, 12, 2)
    previous = saga._services
    saga.install_services(saga.WorkflowServices(system=_FakePsa(today), events=None, settings=None))
    try:
        totals = await unbilled_work(today)
    finally:
        saga.install_services(previous)
    assert totals == {
        "USD": {"0-30": "100.10", "31-60": "50.00", "61-90": "25.00", "90+": "7.00"},
        "EUR": {"0-30": "20.00", "31-60": "0", "61-90": "0", "90+": "0"},
    }


async def test_a_business_central_subscription_handshakes_and_its_payment_notification_syncs(gw: Any) -> None:
    """The real push: Stratum's notification URL subscribed in the Business Central sandbox (which first
    handshakes with it), then finance posts a payment; BC notifies (salesInvoices updated) and the sync it
    starts brings the payment to the CRM and the PSA."""
    from sandboxes.business_central import DE_COMPANY_ID

    project = await _activated(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    invoice = await _bill(gw, project, currency="EUR", amount="640.00", due=FUTURE)
    await _sync(gw)
    webhooks = gw.sandbox_state("business-central").webhooks
    webhooks.transport = httpx.ASGITransport(app=gw.app)  # BC's deliveries reach the gateway
    webhooks.window_seconds = 0.1
    client = await _bc_client(gw)
    try:
        subscribed = await client.post(
            f"{API_ROOT}/subscriptions",
            json={
                "notificationUrl": f"http://testserver{BC_NOTIFICATIONS}",
                "resource": f"/api/v2.0/companies({DE_COMPANY_ID})/salesInvoices",
                "clientState": "bc-secret",
            },
        )
        assert subscribed.status_code == 201, subscribed.text
    finally:
        await client.aclose()

    # The customer pays what it owes: 640.00 and 19 % VAT.
    assert invoice["total"]["amount"] == "761.60"
    await _bc_payment(gw, invoice["id"].split(":", 1)[1], invoice["customer_id"].split(":", 1)[1], "761.60")
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        if _crm_invoice(gw, invoice["id"])["Status__c"] == "Paid":
            break
        await asyncio.sleep(0.2)
    assert _crm_invoice(gw, invoice["id"])["Status__c"] == "Paid"
    pushed = await gw.client.get(
        "/process/v1/runs", params={"workflow": "invoice_status_sync"}, headers=gw.auth("process:read")
    )
    assert any(r["trigger"] == "business-central-webhook" for r in pushed.json()["items"])
    assert _psa_paid_in_full(gw, invoice["psa_invoice_id"]) == 1


def test_the_schedule_is_configured_from_the_environment() -> None:
    from apis.config import load_settings

    settings = load_settings(
        {
            "STRATUM_INVOICE_STATUS__SCHEDULE_ENABLED": "false",
            "STRATUM_INVOICE_STATUS__SCHEDULE_CRON": "*/5 * * * *",
            "STRATUM_INVOICE_STATUS__OVERLAP_SECONDS": "300",
        }
    ).invoice_status
    assert (settings.schedule_enabled, settings.schedule_cron, settings.overlap_seconds) == (
        False,
        "*/5 * * * *",
        300.0,
    )
    assert load_settings({}).invoice_status.schedule_enabled is True
    with pytest.raises(SystemExit):
        load_settings({"STRATUM_INVOICE_STATUS__SCHEDULE_CRON": "often"})


# --- a run database outage (PostgreSQL through a proxy the test controls, as test_run_database_outage) ----


@pytest.fixture
async def pg_gw(
    proxy: TcpProxy,  # noqa: F811
    database: str,  # noqa: F811
    make_gateway: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
) -> Any:
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
    return await make_gateway(
        make_settings(
            workflows={"database_url": url, **WORKFLOWS},
            invoice_status={
                "schedule_enabled": False,
                "business_central_client_state": "bc-secret",
                "business_central_subscriptions": False,
            },
        )
    )


async def test_a_run_database_outage_answers_503_to_a_start_and_to_bc_which_redelivers(
    pg_gw: Any,
    proxy: TcpProxy,  # noqa: F811
) -> None:
    gw = pg_gw
    notification = {
        "value": [
            {
                "subscriptionId": "stratum",
                "clientState": "bc-secret",
                "resource": "api/v2.0/companies(1)/salesInvoices(2)",
                "changeType": "updated",
            }
        ]
    }
    proxy.down("refuse")
    started = await asyncio.wait_for(gw.client.post(SYNCS, json={}, headers=_headers(gw, "process:run")), 30)
    assert started.status_code == 503, started.text
    assert started.json()["code"] == "run-database-unavailable"
    # Business Central retries a 5xx delivery (for 36 hours): the notification is not lost.
    pushed = await asyncio.wait_for(gw.client.post(BC_NOTIFICATIONS, json=notification), 30)
    assert pushed.status_code == 503, pushed.text
    assert "retry-after" in pushed.headers

    proxy.up()
    redelivered = await gw.client.post(BC_NOTIFICATIONS, json=notification)
    assert redelivered.status_code == 202, redelivered.text
    run = await gw.client.get(
        f"{SYNCS}/{redelivered.json()['run_id']}", headers={**gw.auth("process:read"), "Prefer": "wait=30"}
    )
    assert run.json()["state"] == "completed", run.json()


async def test_lost_answers_from_the_crm_and_the_psa_still_write_each_payment_once(gw: Any) -> None:
    project = await _activated(gw, READY_OPPORTUNITY_ID)
    invoice = await _bill(gw, project, currency="USD", amount="450.00", due=FUTURE)
    await _sync(gw)
    await _netsuite_payment(gw, invoice["id"], invoice["customer_id"], "450.00")
    for vendor, rule in (
        ("kantata", {"kind": "lost", "method": "POST", "path_pattern": "external_payments", "times": 1}),
        ("salesforce", {"kind": "lost", "method": "PATCH", "path_pattern": "Stratum_Invoice__c", "times": 1}),
    ):
        async with gw.sandbox(vendor) as sandbox:
            added = await sandbox.post("/__sandbox/faults", json={**rule, "latency_ms": 10})
            assert added.status_code == 201, added.text
    run = await _sync(gw)
    assert invoice["id"] in run["result"]["applied"]
    assert _crm_invoice(gw, invoice["id"])["Status__c"] == "Paid"  # one record (the helper unpacks one)
    assert len(_psa_payment_notes(gw, invoice["psa_invoice_id"])) == 1
    assert _psa_paid_in_full(gw, invoice["psa_invoice_id"]) == 1
    assert [e["type"] for e in await _events(gw)] == ["invoice.paid"]
    # The faults were met (each rule used up), and a step of the run was tried again.
    for vendor in ("kantata", "salesforce"):
        async with gw.sandbox(vendor) as sandbox:
            left = (await sandbox.get("/__sandbox/faults")).json()
            assert left in ([], {"items": []}, {"faults": []}), (vendor, left)
    assert any(step["attempt"] > 1 for step in run["steps"]), run["steps"]


# --- Business Central subscriptions at start-up (issue 11) -----------------------------------------------

BC_SECRET = "bc-client-state-0123456789"


def _bc_settings(make_settings: Callable[..., Settings], **invoice_status: Any) -> Settings:
    return make_settings(
        erp_vendor="netsuite",
        erp_by_legal_entity={"DE01": "business_central"},
        workflows=WORKFLOWS,
        business_central=VENDOR,
        invoice_status={
            "schedule_enabled": False,
            "business_central_client_state": BC_SECRET,
            "business_central_subscriptions": True,
            **invoice_status,
        },
    )


async def _started(settings: Settings, *, reachable: bool = True, outage: bool = False) -> Any:
    """A gateway whose mounted Business Central delivers handshakes and notifications to the gateway
    itself (as the real one would to the public URL), started after the test set its faults."""
    from apis.gateway import build_gateway
    from tests.conftest import GatewayHarness

    harness = GatewayHarness(build_gateway(settings))
    if reachable:
        harness.sandbox_state("business-central").webhooks.transport = httpx.ASGITransport(app=harness.app)
    if outage:
        async with harness.sandbox("business-central") as admin:
            injected = await admin.post("/__sandbox/faults", json={"kind": "outage"})
            assert injected.status_code == 201, injected.text
    await harness.start()
    return harness


async def _wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        found = condition()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _bc_subscriptions(harness: Any) -> dict[str, Any]:
    """The Business Central sandbox's own subscriptions, by collection (``salesInvoices``...)."""
    webhooks = harness.sandbox_state("business-central").webhooks
    found: dict[str, Any] = {}
    for subscription in webhooks.subscriptions.values():
        collection = subscription.resource.rsplit("/", 1)[-1]
        assert collection not in found, f"two subscriptions to {collection}"
        found[collection] = subscription
    return found


async def test_a_gateway_billing_from_business_central_subscribes_once_at_start_and_renews(
    make_settings: Callable[..., Settings],
) -> None:
    """Start-up subscribes Stratum's notification URL to the company's salesInvoices and salesCreditMemos
    (the webhook-supported collections invoice status needs; customerPayments is not one: "Working with
    webhooks in Dynamics 365 Business Central", list of supported entities). Business Central's handshake
    reaches Stratum's endpoint (the sandbox refuses a subscription whose handshake fails). A second start
    finds them and makes none; a renewal moves expirationDateTime three days out."""
    from structlog.testing import capture_logs

    from process_apis.invoice_status import BC_NOTIFICATION_PATH, ensure_business_central_subscriptions
    from sandboxes.business_central import DE_COMPANY_ID

    settings = _bc_settings(make_settings)
    first = await _started(settings)
    try:
        made = await _wait_for(lambda: len(_bc_subscriptions(first)) == 2 and _bc_subscriptions(first), "2")
        assert sorted(made) == ["salesCreditMemos", "salesInvoices"]
        for subscription in made.values():
            # The default public URL (the mounted sandbox's transport delivers to this gateway whatever host).
            assert subscription.notification_url == f"{settings.public_url}{BC_NOTIFICATION_PATH}"
            assert subscription.client_state == BC_SECRET
            assert subscription.resource.lower().startswith(f"companies({DE_COMPANY_ID})/".lower())
        ids = {name: s.id for name, s in made.items()}
    finally:
        await first.stop()

    # Two starts: still one subscription per collection (the sandbox keeps them across restarts).
    with capture_logs() as logs:
        second = await _started(settings)
        try:
            ensured = await _wait_for(
                lambda: [e for e in logs if e["event"] == "bc_subscriptions_ensured"], "the start-up check"
            )
            assert ensured[0]["outcomes"] == {"salesInvoices": "kept", "salesCreditMemos": "kept"}
            assert {name: s.id for name, s in _bc_subscriptions(second).items()} == ids

            # Renewal: one that nears its expiry is renewed (PATCH, handshake again), the other kept.
            invoices = _bc_subscriptions(second)["salesInvoices"]
            soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
            invoices.expires = soon
            result = await ensure_business_central_subscriptions("schedule")
            assert result["subscriptions"] == {"salesInvoices": "renewed", "salesCreditMemos": "kept"}
            renewed = _bc_subscriptions(second)["salesInvoices"]
            assert renewed.id == ids["salesInvoices"]
            assert renewed.expires > soon + dt.timedelta(days=2)
            assert len(_bc_subscriptions(second)) == 2
        finally:
            await second.stop()
    assert not [e for e in logs if e["event"] == "bc_subscription_failed"]
    # The client state is a secret: no log line carries it.
    assert BC_SECRET not in repr(logs)


async def test_a_business_central_outage_at_start_is_logged_and_not_fatal(
    make_settings: Callable[..., Settings],
) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        harness = await _started(_bc_settings(make_settings), outage=True)
        try:
            failed = await _wait_for(
                lambda: [e for e in logs if e["event"] == "bc_subscription_failed"], "the failure"
            )
            assert failed[0]["trigger"] == "start"
            assert "vendor-unavailable" in failed[0]["reason"]
            assert _bc_subscriptions(harness) == {}
            # The gateway serves on: invoice status still syncs (by polling: NetSuite answers).
            async with harness.sandbox("business-central") as admin:
                assert (await admin.delete("/__sandbox/faults")).status_code == 204
            await _sync(harness)
        finally:
            await harness.stop()
    assert BC_SECRET not in repr(logs)


async def test_a_failed_handshake_is_logged_and_subscribes_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        harness = await _started(_bc_settings(make_settings), reachable=False)
        try:
            failed = await _wait_for(
                lambda: [e for e in logs if e["event"] == "bc_subscription_failed"], "the failure"
            )
            assert failed[0]["reason"].startswith("vendor-rejected")
            assert _bc_subscriptions(harness) == {}
        finally:
            await harness.stop()


def test_no_subscription_where_business_central_could_never_deliver(
    make_settings: Callable[..., Settings],
) -> None:
    from process_apis.invoice_status import business_central_subscription_plan

    assert business_central_subscription_plan(make_settings()).enabled is False  # NetSuite only
    off = _bc_settings(make_settings, business_central_subscriptions=False)
    assert business_central_subscription_plan(off).enabled is False
    dev = business_central_subscription_plan(_bc_settings(make_settings))
    assert (dev.enabled, dev.refused) == (True, None)
    # A real Business Central (a base URL) cannot call back a plain-http public URL.
    real = msgspec.structs.replace(
        _bc_settings(make_settings),
        business_central=msgspec.structs.replace(
            Settings().business_central, base_url="https://api.businesscentral.dynamics.com"
        ),
    )
    refused = business_central_subscription_plan(real)
    assert refused.enabled
    assert "https" in (refused.refused or "")
    secure = msgspec.structs.replace(real, public_url="https://stratum.example.com")
    assert business_central_subscription_plan(secure).refused is None
    assert business_central_subscription_plan(secure).notification_url == (
        "https://stratum.example.com/process/v1/erp-notifications/business-central"
    )
