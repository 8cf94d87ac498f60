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
    # What the customer owes: 300.00 net and 19 % VAT (the G/L account's VAT19).
    assert (posted["totalAmountExcludingTax"], posted["totalTaxAmount"]) == (Decimal(300), Decimal(57))
    assert posted["remainingAmount"] == posted["totalAmountIncludingTax"] == Decimal(357)
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


def _account_line(quantity: str, unit_price: str, tax_code: str | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {
        "lineType": "Account",
        "lineObjectNumber": "8400",
        "quantity": Decimal(quantity),
        "unitPrice": Decimal(unit_price),
    }
    if tax_code is not None:
        line["taxCode"] = tax_code
    return line


async def _vat_draft(client: Client, lines: list[dict[str, Any]]) -> dict[str, Any]:
    response = await client.request(
        "POST",
        INVOICES,
        content=NUMBERS.encode({"customerId": MUELLER_CUSTOMER_ID, "salesInvoiceLines": lines}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    made: dict[str, Any] = body(response)
    return made


async def test_vat_by_tax_code_two_rates_and_none_on_one_invoice(client: Client) -> None:
    """The VAT posting setup of CRONUS DE (VAT19 19 %, VAT7 7 %, NO VAT 0 %) as Business Central applies
    it: each line's taxPercent, totalTaxAmount and amountIncludingTax, the header's totals (API v2.0
    salesInvoice / salesInvoiceLine, learn.microsoft.com)."""
    made = await _vat_draft(
        client,
        [
            _account_line("10", "150.00", "VAT19"),
            _account_line("2", "45.50", "VAT7"),
            _account_line("1", "80.00", "NO VAT"),
            {"lineType": "Comment", "description": "Source: time:1"},
        ],
    )
    lines = body(await client.get(f"{INVOICES}({made['id']})/salesInvoiceLines"))["value"]
    assert [
        (line["taxCode"], line["taxPercent"], line["totalTaxAmount"], line["amountIncludingTax"])
        for line in lines
    ] == [
        ("VAT19", Decimal(19), Decimal("285.00"), Decimal("1785.00")),
        ("VAT7", Decimal(7), Decimal("6.37"), Decimal("97.37")),
        ("NO VAT", Decimal(0), Decimal(0), Decimal("80.00")),
        ("", Decimal(0), Decimal(0), Decimal(0)),
    ]
    invoice = body(await client.get(f"{INVOICES}({made['id']})"))
    assert invoice["totalAmountExcludingTax"] == Decimal("1671.00")
    assert invoice["totalTaxAmount"] == Decimal("291.37")
    assert invoice["totalAmountIncludingTax"] == Decimal("1962.37")
    assert invoice["remainingAmount"] == 0  # a draft owes nothing yet

    assert (await action(client, made["id"], "post")).status_code == 204
    posted = body(await client.get(f"{INVOICES}({made['id']})"))
    assert posted["remainingAmount"] == Decimal("1962.37")


async def test_vat_is_rounded_once_per_vat_identifier_not_per_line(client: Client) -> None:
    """Two lines of 10.03 at 19 %: 1.9057 each, which rounded per line would make 3.82; Business Central
    rounds the VAT of the lines' sum (20.06 x 19 % = 3.8114 -> 3.81; BaseApp table 290 "VAT Amount Line",
    UpdateLines) and spreads it over the lines carrying the remainder (table 37 "Sales Line",
    UpdateVATOnLines): 1.91 and 1.90."""
    made = await _vat_draft(client, [_account_line("1", "10.03"), _account_line("1", "10.03")])
    invoice = body(await client.get(f"{INVOICES}({made['id']})", params={"$expand": "salesInvoiceLines"}))
    assert invoice["totalTaxAmount"] == Decimal("3.81")
    assert invoice["totalAmountIncludingTax"] == Decimal("23.87")
    taxes = [line["totalTaxAmount"] for line in invoice["salesInvoiceLines"]]
    assert taxes == [Decimal("1.91"), Decimal("1.90")]
    assert sum(taxes) == invoice["totalTaxAmount"]
    assert sum(line["amountIncludingTax"] for line in invoice["salesInvoiceLines"]) == Decimal("23.87")


async def test_paying_the_net_leaves_the_vat_open_and_the_gross_settles(client: Client) -> None:
    made = await _vat_draft(client, [_account_line("4", "250.00")])  # 1,000.00 net, 190.00 VAT
    assert (await action(client, made["id"], "post")).status_code == 204
    for amount, expected in (
        (Decimal("-1000.00"), ("Open", Decimal("190.00"))),
        (Decimal("-190.00"), ("Paid", 0)),
    ):
        paid = await client.request(
            "POST",
            f"{DE}/customerPayments",
            content=NUMBERS.encode(
                {"customerId": MUELLER_CUSTOMER_ID, "appliesToInvoiceId": made["id"], "amount": amount}
            ),
            headers={"Content-Type": "application/json"},
        )
        assert paid.status_code == 201, paid.text
        invoice = body(await client.get(f"{INVOICES}({made['id']})"))
        assert (invoice["status"], invoice["remainingAmount"]) == expected


async def test_a_cancelled_invoices_credit_memo_credits_the_vat_too(client: Client) -> None:
    before = body(await client.get(f"{INVOICES}({OPEN_INVOICE_ID})"))
    assert before["totalTaxAmount"] == Decimal("2743.70")
    assert (await action(client, OPEN_INVOICE_ID, "cancel")).status_code == 204
    (memo,) = body(await client.get(f"{DE}/salesCreditMemos"))["value"]
    assert (memo["totalAmountExcludingTax"], memo["totalTaxAmount"], memo["totalAmountIncludingTax"]) == (
        Decimal("14440.50"),
        Decimal("2743.70"),
        Decimal("17184.20"),
    )


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


async def test_a_line_added_later_reshares_the_documents_vat(client: Client) -> None:
    """POST salesInvoiceLines on a draft: Business Central recomputes the document's VAT with the new line
    (one rounding for the VAT identifier), so the header's VAT is never the sum of per-line roundings."""
    made = await _vat_draft(client, [_account_line("1", "10.03")])
    assert body(await client.get(f"{INVOICES}({made['id']})"))["totalTaxAmount"] == Decimal("1.91")
    added = await client.request(
        "POST",
        f"{INVOICES}({made['id']})/salesInvoiceLines",
        content=NUMBERS.encode(_account_line("1", "10.03")),
        headers={"Content-Type": "application/json"},
    )
    assert added.status_code == 201, added.text
    assert (body(added)["taxPercent"], body(added)["totalTaxAmount"]) == (Decimal(19), Decimal("1.90"))
    invoice = body(await client.get(f"{INVOICES}({made['id']})"))
    assert (invoice["totalTaxAmount"], invoice["totalAmountIncludingTax"]) == (
        Decimal("3.81"),
        Decimal("23.87"),
    )
