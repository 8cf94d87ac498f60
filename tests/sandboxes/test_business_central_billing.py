"""The Business Central sandbox's billing behaviour on the wire, as APIV2 pages 30012 (salesInvoices and
its bound actions), 30038 (salesCreditMemos), 30043 (salesInvoiceLines) and 30055 (customerPayments) of
microsoft/ALAppExtensions define it: draft and post, cancel with a corrective credit memo, line tax codes,
payments that settle an invoice and reach the invoices' webhook subscribers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from sandboxes.business_central import (
    DE_COMPANY_ID,
    BusinessCentralSandboxSettings,
    create_business_central_sandbox,
)
from sandboxes.business_central.data import (
    DRAFT_INVOICE_ID,
    MUELLER_CUSTOMER_ID,
    OPEN_INVOICE_ID,
    PAID_INVOICE_ID,
    PARTIALLY_PAID_INVOICE_ID,
    ZERO_GUID,
)
from tests.sandboxes.test_business_central_sandbox import DE, Client, body
from tests.sandboxes.test_business_central_webhooks import SUBSCRIPTIONS, Listener

INVOICES = f"{DE}/salesInvoices"
NUMBERS = msgspec.json.Encoder(decimal_format="number")


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    client = Client(create_business_central_sandbox())
    yield client
    await client.http.aclose()


async def draft(client: Client, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "customerId": MUELLER_CUSTOMER_ID,
        "externalDocumentNumber": "BILL-TEST-1",
        "salesInvoiceLines": [
            {"lineType": "Account", "lineObjectNumber": "8400", "quantity": 3, "unitPrice": 100},
            {"lineType": "Comment", "description": "Source: time:1,time:2"},
        ],
        **overrides,
    }
    response = await client.request("POST", INVOICES, json=payload)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = body(response)
    return made


async def action(client: Client, invoice_id: str, name: str) -> httpx.Response:
    return await client.request("POST", f"{INVOICES}({invoice_id})/Microsoft.NAV.{name}")


async def test_a_draft_stays_a_draft_until_posted_and_keeps_its_id(client: Client) -> None:
    made = await draft(client)
    assert made["status"] == "Draft"
    assert made["number"].startswith("S-INV")

    assert (await action(client, made["id"], "post")).status_code == 204

    posted = body(await client.get(f"{INVOICES}({made['id']})"))
    assert posted["status"] == "Open"
    assert posted["remainingAmount"] == Decimal(300)
    assert posted["number"].isdigit()  # the posted series, under the same id


async def test_posting_a_posted_invoice_is_refused_as_page_30012_does(client: Client) -> None:
    response = await action(client, OPEN_INVOICE_ID, "post")
    assert response.status_code == 400
    assert "draft invoice only" in response.json()["error"]["message"]


async def test_lines_take_a_tax_code_the_company_has(client: Client) -> None:
    made = await draft(
        client,
        salesInvoiceLines=[
            {
                "lineType": "Account",
                "lineObjectNumber": "8400",
                "quantity": 1,
                "unitPrice": 5,
                "taxCode": "vat7",
            }
        ],
    )
    lines = body(await client.get(f"{INVOICES}({made['id']})/salesInvoiceLines"))["value"]
    assert lines[0]["taxCode"] == "VAT7"
    defaulted = await draft(client, externalDocumentNumber="BILL-TEST-2")
    lines = body(await client.get(f"{INVOICES}({defaulted['id']})/salesInvoiceLines"))["value"]
    assert [line["taxCode"] for line in lines] == ["VAT19", ""]  # a comment line has none

    response = await client.request(
        "POST",
        INVOICES,
        json={
            "customerId": MUELLER_CUSTOMER_ID,
            "salesInvoiceLines": [
                {
                    "lineType": "Account",
                    "lineObjectNumber": "8400",
                    "quantity": 1,
                    "unitPrice": 5,
                    "taxCode": "X",
                }
            ],
        },
    )
    assert response.status_code == 400
    assert "VAT Prod. Posting Group" in response.json()["error"]["message"]


async def test_cancel_posts_a_corrective_credit_memo_and_cancels_the_invoice(client: Client) -> None:
    before = body(await client.get(f"{INVOICES}({OPEN_INVOICE_ID})"))

    assert (await action(client, OPEN_INVOICE_ID, "cancel")).status_code == 204

    after = body(await client.get(f"{INVOICES}({OPEN_INVOICE_ID})"))
    assert after["status"] == "Canceled"
    assert after["remainingAmount"] == 0
    assert after["lastModifiedDateTime"] > before["lastModifiedDateTime"]
    memos = body(
        await client.get(
            f"{DE}/salesCreditMemos", params={"$filter": f"invoiceNumber eq '{before['number']}'"}
        )
    )["value"]
    assert len(memos) == 1
    assert memos[0]["status"] == "Corrective"
    assert memos[0]["invoiceId"] == OPEN_INVOICE_ID
    assert memos[0]["totalAmountIncludingTax"] == before["totalAmountIncludingTax"]

    again = await action(client, OPEN_INVOICE_ID, "cancel")
    assert again.status_code == 400
    assert "already been canceled" in again.json()["error"]["message"]
    assert len(body(await client.get(f"{DE}/salesCreditMemos"))["value"]) == 1


@pytest.mark.parametrize("invoice_id", [PAID_INVOICE_ID, PARTIALLY_PAID_INVOICE_ID])
async def test_an_invoice_with_payments_cannot_be_cancelled(client: Client, invoice_id: str) -> None:
    response = await action(client, invoice_id, "cancel")
    assert response.status_code == 400
    assert "fully or partially paid" in response.json()["error"]["message"]
    assert body(await client.get(f"{DE}/salesCreditMemos"))["value"] == []


async def test_a_draft_cannot_be_cancelled_only_deleted(client: Client) -> None:
    response = await action(client, DRAFT_INVOICE_ID, "cancel")
    assert response.status_code == 400
    assert "posted invoice only" in response.json()["error"]["message"]
    etag = body(await client.get(f"{INVOICES}({DRAFT_INVOICE_ID})"))["@odata.etag"]
    deleted = await client.request("DELETE", f"{INVOICES}({DRAFT_INVOICE_ID})", headers={"If-Match": etag})
    assert deleted.status_code == 204
    assert (await client.get(f"{INVOICES}({DRAFT_INVOICE_ID})")).status_code == 404


async def test_make_corrective_credit_memo_leaves_a_draft_and_the_invoice_open(client: Client) -> None:
    assert (await action(client, OPEN_INVOICE_ID, "makeCorrectiveCreditMemo")).status_code == 204
    (memo,) = body(await client.get(f"{DE}/salesCreditMemos"))["value"]
    assert memo["status"] == "Draft"
    assert body(await client.get(f"{INVOICES}({OPEN_INVOICE_ID})"))["status"] == "Open"
    refused = await action(client, PARTIALLY_PAID_INVOICE_ID, "makeCorrectiveCreditMemo")
    assert refused.status_code == 400
    assert "partially paid" in refused.json()["error"]["message"]


async def test_credit_memos_are_read_only(client: Client) -> None:
    response = await client.request(
        "POST", f"{DE}/salesCreditMemos", json={"customerId": MUELLER_CUSTOMER_ID}
    )
    assert response.status_code == 405


async def test_a_payment_lowers_the_remaining_amount_then_pays_the_invoice(client: Client) -> None:
    now = time.time()
    client.sandbox.clock = lambda: now  # the two payments a minute apart, whatever the test's speed
    invoice = body(await client.get(f"{INVOICES}({OPEN_INVOICE_ID})"))
    total = invoice["totalAmountIncludingTax"]
    first = await client.request(
        "POST",
        f"{DE}/customerPayments",
        json={"customerId": MUELLER_CUSTOMER_ID, "appliesToInvoiceId": OPEN_INVOICE_ID, "amount": -100},
    )
    assert first.status_code == 201, first.text
    assert body(first)["lastModifiedDateTime"]
    partly = body(await client.get(f"{INVOICES}({OPEN_INVOICE_ID})"))
    assert (partly["status"], partly["remainingAmount"]) == ("Open", total - 100)
    assert partly["lastModifiedDateTime"] > invoice["lastModifiedDateTime"]
    assert partly["@odata.etag"] != invoice["@odata.etag"]

    client.sandbox.clock = lambda: now + 60
    rest = await client.request(
        "POST",
        f"{DE}/customerPayments",
        # money as a JSON number, never through a float
        content=NUMBERS.encode(
            {
                "customerId": MUELLER_CUSTOMER_ID,
                "appliesToInvoiceId": OPEN_INVOICE_ID,
                "amount": -(total - 100),
            }
        ),
        headers={"Content-Type": "application/json"},
    )
    assert rest.status_code == 201, rest.text
    paid = body(await client.get(f"{INVOICES}({OPEN_INVOICE_ID})"))
    assert (paid["status"], paid["remainingAmount"]) == ("Paid", 0)

    since = partly["lastModifiedDateTime"]
    changed = body(
        await client.get(f"{DE}/customerPayments", params={"$filter": f"lastModifiedDateTime gt {since}"})
    )["value"]
    assert [payment["appliesToInvoiceId"] for payment in changed] == [OPEN_INVOICE_ID]


async def test_a_payment_reaches_the_invoices_subscribers() -> None:
    listener = Listener()
    settings = BusinessCentralSandboxSettings(
        notification_window_seconds=0.05, notification_transport=httpx.MockTransport(listener.handle)
    )
    client = Client(create_business_central_sandbox(settings))
    try:
        for entity_set in ("salesInvoices", "salesCreditMemos"):
            subscribed = await client.request(
                "POST",
                SUBSCRIPTIONS,
                json={
                    "notificationUrl": "https://listener.example/bc",
                    "resource": f"/api/v2.0/companies({DE_COMPANY_ID})/{entity_set}",
                },
            )
            assert subscribed.status_code == 201, subscribed.text
        await client.request(
            "POST",
            f"{DE}/customerPayments",
            json={"customerId": MUELLER_CUSTOMER_ID, "appliesToInvoiceId": OPEN_INVOICE_ID, "amount": -10},
        )
        await client.sandbox.webhooks.idle()
        resources = {entry["resource"] for note in listener.notifications for entry in note["value"]}
        assert resources == {f"api/v2.0/companies({DE_COMPANY_ID})/salesInvoices({OPEN_INVOICE_ID})"}

        listener.notifications.clear()
        draft_invoice = await draft(client)
        await action(client, draft_invoice["id"], "post")
        await action(client, draft_invoice["id"], "cancel")
        await client.sandbox.webhooks.idle()
        entries = {
            entry["resource"]: entry["changeType"]
            for note in listener.notifications
            for entry in note["value"]
        }
        invoice = f"api/v2.0/companies({DE_COMPANY_ID})/salesInvoices({draft_invoice['id']})"
        assert entries.pop(invoice) == "created"  # made, posted and cancelled in one window: a create
        ((memo, change),) = entries.items()
        assert memo.startswith(f"api/v2.0/companies({DE_COMPANY_ID})/salesCreditMemos(")
        assert change == "created"
    finally:
        await client.http.aclose()


async def test_an_unapplied_payment_names_the_empty_guid(client: Client) -> None:
    response = await client.request(
        "POST", f"{DE}/customerPayments", json={"customerId": MUELLER_CUSTOMER_ID, "amount": -5}
    )
    assert body(response)["appliesToInvoiceId"] == ZERO_GUID
