"""The NetSuite sandbox's billing behaviour on the wire: invoice approval, tax code and source-id columns,
invoice -> credit memo transform, customer credit hold, payments a finance user enters.

Oracle's docs behind each: "Transforming Records" (``POST {type}/{id}/!transform/{target}``, 204 +
``Location``; https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_157901123882.html),
invoice statuses ``CustInvc:A`` Open, ``B`` Paid In Full, ``D`` Pending Approval, ``E`` Rejected
(https://timdietrich.me/blog/netsuite-suiteql-transaction-statuses), the customer's ``creditHoldOverride``
(Auto / On / Off) and ``customerPayment`` with ``apply.items[{doc, apply, amount}]``.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandboxes.netsuite.data import (
    DEMO_CUSTOMER_ID,
    OPEN_INVOICE_ID,
    PAID_INVOICE_ID,
    SOURCES_FIELD,
)
from tests.sandboxes.test_netsuite_sandbox import RECORDS, Account, account, assert_error, record_id_of

CONSULTING_ITEM = "101"


def draft_invoice(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "externalId": "bill:3001:2026-02",
        "entity": {"id": DEMO_CUSTOMER_ID},
        "memo": "February 2026",
        "approvalStatus": {"id": "1"},
        "item": {
            "items": [
                {
                    "item": {"id": CONSULTING_ITEM},
                    "description": "Consulting",
                    "quantity": 10,
                    "rate": 200.0,
                    "taxCode": {"externalId": "US-NY"},
                    SOURCES_FIELD: "time:1,time:2",
                }
            ]
        },
    }
    return {**body, **overrides}


async def create(ns: Account, record_type: str, body: dict[str, Any]) -> str:
    response = await ns.api("POST", f"{RECORDS}/{record_type}", json=body)
    assert response.status_code == 204, response.text
    return record_id_of(response.headers["location"])


async def pay(ns: Account, invoice_id: str, amount: float) -> Any:
    return await ns.api(
        "POST",
        f"{RECORDS}/customerPayment",
        json={
            "customer": {"id": DEMO_CUSTOMER_ID},
            "payment": amount,
            "apply": {"items": [{"doc": {"id": invoice_id}, "apply": True, "amount": amount}]},
        },
    )


@pytest.mark.asyncio
async def test_a_pending_approval_invoice_keeps_its_tax_code_and_sources_and_posts_once_approved() -> None:
    async with account() as ns:
        invoice_id = await create(ns, "invoice", draft_invoice())
        pending = await ns.record("invoice", invoice_id, expandSubResources="true")
        (row,) = await ns.rows(
            f"SELECT status, BUILTIN.DF(status) AS name FROM transaction WHERE id = {invoice_id}"
        )
        refused_payment = await pay(ns, invoice_id, 100.0)
        approve = await ns.api(
            "PATCH", f"{RECORDS}/invoice/{invoice_id}", json={"approvalStatus": {"id": "2"}}
        )
        approved = await ns.record("invoice", invoice_id)
        back_to_pending = await ns.api(
            "PATCH", f"{RECORDS}/invoice/{invoice_id}", json={"approvalStatus": {"id": "1"}}
        )
    assert pending["status"] == {"id": "D", "refName": "Pending Approval"}
    assert pending["approvalStatus"]["id"] == "1"
    assert pending["memo"] == "February 2026"
    (line,) = pending["item"]["items"]
    assert line["taxCode"]["refName"] == "US-NY"
    assert line[SOURCES_FIELD] == "time:1,time:2"
    assert (line["amount"], pending["amountRemaining"]) == (2000.0, 2000.0)
    assert row == {"links": [], "status": "D", "name": "Invoice : Pending Approval"}
    assert_error(refused_payment, 400, "USER_ERROR")
    assert approve.status_code == 204
    assert (approved["status"]["id"], approved["approvalStatus"]["id"]) == ("A", "2")
    assert_error(back_to_pending, 400, "USER_ERROR")


@pytest.mark.asyncio
async def test_the_invoice_record_metadata_has_approval_and_the_sources_column() -> None:
    async with account() as ns:
        schema = (await ns.api("GET", f"{RECORDS}/metadata-catalog/invoice")).json()
    properties = schema["properties"]
    assert properties["approvalStatus"]["properties"]["id"]["enum"] == ["1", "2", "3"]
    line = properties["item"]["properties"]["items"]["items"]["properties"]
    assert {"taxCode", SOURCES_FIELD} <= set(line)


@pytest.mark.asyncio
async def test_transforming_an_invoice_into_a_credit_memo_credits_it_in_full() -> None:
    async with account() as ns:
        before = await ns.record("invoice", OPEN_INVOICE_ID)
        url = f"{RECORDS}/invoice/{OPEN_INVOICE_ID}/!transform/creditMemo"
        response = await ns.api("POST", url, json={"externalId": "void:10001"})
        memo_id = record_id_of(response.headers["location"])
        memo = await ns.record("creditMemo", memo_id, expandSubResources="true")
        after = await ns.record("invoice", OPEN_INVOICE_ID)
        again = await ns.api("POST", url, json={"externalId": "void:10001"})
        paid = await ns.api("POST", f"{RECORDS}/invoice/{PAID_INVOICE_ID}/!transform/creditMemo", json={})
        unsupported = await ns.api(
            "POST", f"{RECORDS}/invoice/{OPEN_INVOICE_ID}/!transform/salesOrder", json={}
        )
        rows = await ns.rows(
            f"SELECT id, BUILTIN.DF(status) AS status FROM transaction "
            f"WHERE type = 'CustCred' AND createdfrom = {OPEN_INVOICE_ID}"
        )
        delete_invoice = await ns.api("DELETE", f"{RECORDS}/invoice/{OPEN_INVOICE_ID}")
    assert response.status_code == 204
    assert "/record/v1/creditMemo/" in response.headers["location"]
    assert memo["createdFrom"]["id"] == OPEN_INVOICE_ID
    assert memo["entity"]["id"] == before["entity"]["id"]
    assert memo["total"] == before["total"] == 29800.0
    assert (memo["applied"], memo["unapplied"], memo["status"]["refName"]) == (29800.0, 0.0, "Fully Applied")
    (applied,) = memo["apply"]["items"]
    assert (applied["doc"]["id"], applied["amount"]) == (OPEN_INVOICE_ID, 29800.0)
    assert (after["amountRemaining"], after["status"]["id"]) == (0.0, "B")
    assert after["lastModifiedDate"] >= before["lastModifiedDate"]
    assert_error(again, 400, "USER_ERROR")  # the invoice is no longer open (and the external id is taken)
    assert_error(paid, 400, "USER_ERROR")
    assert_error(unsupported, 400, "INVALID_PARAMETER")
    assert rows == [{"links": [], "id": memo_id, "status": "Credit Memo : Fully Applied"}]
    assert_error(delete_invoice, 400, "USER_ERROR")  # the credit memo depends on it


@pytest.mark.asyncio
async def test_a_credit_memos_external_id_is_unique() -> None:
    async with account() as ns:
        first = await create(ns, "invoice", draft_invoice(approvalStatus={"id": "2"}))
        second = await create(
            ns, "invoice", draft_invoice(externalId="bill:3001:2026-03", approvalStatus={"id": "2"})
        )
        made = await ns.api(
            "POST", f"{RECORDS}/invoice/{first}/!transform/creditMemo", json={"externalId": "k"}
        )
        clash = await ns.api(
            "POST", f"{RECORDS}/invoice/{second}/!transform/creditMemo", json={"externalId": "k"}
        )
        still_open = await ns.record("invoice", second)
    assert made.status_code == 204
    assert_error(clash, 400, "USER_ERROR")
    assert (still_open["status"]["id"], still_open["amountRemaining"]) == ("A", 2000.0)  # all or nothing


@pytest.mark.asyncio
async def test_a_finance_users_payment_settles_the_invoice_and_moves_its_last_modified() -> None:
    async with account() as ns:
        invoice_id = await create(ns, "invoice", draft_invoice(approvalStatus={"id": "2"}))
        before = await ns.record("invoice", invoice_id)
        partial = await pay(ns, invoice_id, 500.0)
        part_paid = await ns.record("invoice", invoice_id)
        full = await pay(ns, invoice_id, 1500.0)
        paid = await ns.record("invoice", invoice_id)
        payments = await ns.rows(
            "SELECT id, TO_CHAR(lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS modified FROM transaction "
            "WHERE type = 'CustPymt' AND lastmodifieddate >= TO_TIMESTAMP('2026-06-01 00:00:00', "
            "'YYYY-MM-DD HH24:MI:SS') ORDER BY id"
        )
    assert partial.status_code == full.status_code == 204
    assert (part_paid["status"]["id"], part_paid["amountRemaining"], part_paid["total"]) == (
        "A",
        1500.0,
        2000.0,
    )
    assert part_paid["lastModifiedDate"] >= before["lastModifiedDate"]
    assert (paid["status"]["refName"], paid["amountRemaining"]) == ("Paid In Full", 0.0)
    ids = [str(row["id"]) for row in payments]
    assert ids == [record_id_of(partial.headers["location"]), record_id_of(full.headers["location"])]


@pytest.mark.asyncio
async def test_a_customers_credit_hold_and_balance() -> None:
    async with account() as ns:
        before = await ns.record("customer", DEMO_CUSTOMER_ID)
        held = await ns.api(
            "PATCH", f"{RECORDS}/customer/{DEMO_CUSTOMER_ID}", json={"creditHoldOverride": {"id": "ON"}}
        )
        after = await ns.record("customer", DEMO_CUSTOMER_ID)
        bad = await ns.api(
            "PATCH", f"{RECORDS}/customer/{DEMO_CUSTOMER_ID}", json={"creditHoldOverride": {"id": "MAYBE"}}
        )
        read_only = await ns.api("PATCH", f"{RECORDS}/customer/{DEMO_CUSTOMER_ID}", json={"balance": 1.0})
        open_invoices = await ns.rows(
            f"SELECT foreignamountremaining AS due FROM transaction WHERE type = 'CustInvc' AND status = 'A' "
            f"AND entity = {DEMO_CUSTOMER_ID}"
        )
    assert "creditHoldOverride" not in before
    assert held.status_code == 204
    assert after["creditHoldOverride"] == {"id": "ON", "refName": "On"}
    assert after["balance"] == round(sum(float(row["due"]) for row in open_invoices), 2) > 0
    assert_error(bad, 400, "INVALID_KEY_OR_REF")
    assert_error(read_only, 400, "USER_ERROR")


@pytest.mark.asyncio
async def test_one_payment_applied_to_two_invoices_keeps_each_apply_lines_amount() -> None:
    """Oracle's "Customer Payment" REST sample (docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/
    article_0224093711.html): ``payment`` with ``apply.items[{doc, apply, amount}]``; each invoice is paid
    its line's amount, and the record read back (``expandSubResources``) answers the lines with them."""
    async with account() as ns:
        first = await create(ns, "invoice", draft_invoice(externalId="split-a", approvalStatus={"id": "2"}))
        second = await create(ns, "invoice", draft_invoice(externalId="split-b", approvalStatus={"id": "2"}))
        response = await ns.api(
            "POST",
            f"{RECORDS}/customerPayment",
            json={
                "customer": {"id": DEMO_CUSTOMER_ID},
                "payment": 2500.0,
                "apply": {
                    "items": [
                        {"doc": {"id": first}, "apply": True, "amount": 2000.0},
                        {"doc": {"id": second}, "apply": True, "amount": 500.0},
                    ]
                },
            },
        )
        assert response.status_code == 204, response.text
        payment = await ns.record(
            "customerPayment", record_id_of(response.headers["location"]), expandSubResources="true"
        )
        paid_first = await ns.record("invoice", first)
        paid_second = await ns.record("invoice", second)
        over = await ns.api(
            "POST",
            f"{RECORDS}/customerPayment",
            json={
                "customer": {"id": DEMO_CUSTOMER_ID},
                "payment": 100.0,
                "apply": {"items": [{"doc": {"id": second}, "apply": True, "amount": 150.0}]},
            },
        )
    lines = sorted((line["doc"]["id"], line["apply"], line["amount"]) for line in payment["apply"]["items"])
    assert lines == sorted([(first, True, 2000.0), (second, True, 500.0)])
    assert payment["payment"] == 2500.0
    assert (paid_first["amountRemaining"], paid_first["status"]["id"]) == (0.0, "B")
    assert (paid_second["amountRemaining"], paid_second["amountPaid"]) == (1500.0, 500.0)
    assert_error(over, 400, "USER_ERROR")  # more applied than the payment
