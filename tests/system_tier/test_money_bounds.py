"""Money a caller sends is bounded by what every vendor of its domain can hold, and travels as a decimal
string: anything else is a 422 naming the field, before any vendor is called; the contract states the same
bound as the string's pattern and maximum length."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from sandboxes.netsuite.data import DEMO_CUSTOMER_ID, DEMO_PROJECT_ID
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID

TWENTY_NINE_DIGITS = "12345678901234567890123456789"


def _headers(gw: Any) -> dict[str, str]:
    return {**gw.auth("system:read system:write"), "Idempotency-Key": uuid.uuid4().hex}


def _project(budget: Any, **extra: Any) -> dict[str, Any]:
    return {
        "external_key": f"opp-{uuid.uuid4().hex[:12]}",
        "name": "Bounded budget",
        "customer_id": DEMO_ACCOUNT_ID,
        "currency": "USD",
        "budget": {"amount": budget, "currency": "USD"},
        **extra,
    }


def _invoice(*lines: dict[str, Any]) -> dict[str, Any]:
    return {
        "external_key": f"inv-{uuid.uuid4().hex[:12]}",
        "customer_id": DEMO_CUSTOMER_ID,
        "project_id": DEMO_PROJECT_ID,
        "currency": "USD",
        "issue_date": "2026-11-30",
        "due_date": "2026-12-30",
        "lines": list(lines),
    }


def _fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation-failed"
    return [error["field"] for error in problem["errors"]]


def _workspaces(gw: Any) -> int:
    return len(gw.sandbox_state("kantata").records["workspaces"])


async def test_a_29_digit_budget_is_refused_before_any_vendor_holds_it(gw: Any) -> None:
    before = _workspaces(gw)
    response = await gw.client.post(
        "/system/v1/psa/projects", json=_project(TWENTY_NINE_DIGITS), headers=_headers(gw)
    )
    assert _fields(response) == ["budget.amount"]
    assert "21,474,836.47" in response.json()["errors"][0]["message"]
    assert _workspaces(gw) == before


@pytest.mark.parametrize(
    ("budget", "status"),
    [("21474836.47", 201), ("21474836.48", 422), ("100.005", 422), ("-5.00", 422), ("1e3", 422)],
)
async def test_a_project_amount_fits_kantatas_cents_with_two_decimals(
    gw: Any, budget: str, status: int
) -> None:
    response = await gw.client.post("/system/v1/psa/projects", json=_project(budget), headers=_headers(gw))
    assert response.status_code == status, response.text


async def test_a_milestone_amount_is_bounded_like_the_budget(gw: Any) -> None:
    milestone = {"name": "Build", "amount": {"amount": TWENTY_NINE_DIGITS, "currency": "USD"}}
    response = await gw.client.post(
        "/system/v1/psa/projects", json=_project("1000.00", milestones=[milestone]), headers=_headers(gw)
    )
    assert _fields(response) == ["milestones[0].amount.amount"]


async def test_money_sent_as_a_json_number_is_refused_naming_the_field(gw: Any) -> None:
    before = _workspaces(gw)
    response = await gw.client.post("/system/v1/psa/projects", json=_project(120000.5), headers=_headers(gw))
    assert _fields(response) == ["budget.amount"]
    assert "not a JSON number" in response.json()["errors"][0]["message"]
    assert _workspaces(gw) == before

    invoice = _invoice({"description": "Work", "quantity": 2, "unit_price": 185})
    response = await gw.client.post("/system/v1/erp/invoices", json=invoice, headers=_headers(gw))
    assert _fields(response) == ["lines[0].quantity", "lines[0].unit_price"]

    schedule = {
        "external_key": f"bs-{uuid.uuid4().hex[:12]}",
        "billing_model": "milestone",
        "currency": "USD",
        "lines": [{"date": "2027-01-15", "description": "Discovery", "amount": 40000}],
    }
    response = await gw.client.post(
        f"/system/v1/erp/projects/{DEMO_PROJECT_ID}/billing-schedules", json=schedule, headers=_headers(gw)
    )
    assert _fields(response) == ["lines[0].amount"]

    baseline = {"external_key": "plan-1", "currency": "USD", "months": [{"month": "2027-01", "amount": 1.5}]}
    response = await gw.client.put(
        "/system/v1/fpa/projects/P-1/revenue-baseline", json=baseline, headers=_headers(gw)
    )
    assert _fields(response) == ["months[0].amount"]


async def test_an_invoice_must_fit_what_the_erp_holds(gw: Any) -> None:
    invoices_before = len(gw.sandbox_state("netsuite").records["invoice"])
    refused = [
        ({"description": "Work", "unit_price": "10.123456"}, "lines[0].unit_price"),
        ({"description": "Work", "unit_price": TWENTY_NINE_DIGITS}, "lines[0].unit_price"),
        # 500 lines of the largest quantity and price must still total less than an ERP holds.
        ({"description": "Work", "unit_price": "10000000"}, "lines[0].unit_price"),
        ({"description": "Work", "quantity": "100000", "unit_price": "1.00"}, "lines[0].quantity"),
    ]
    for line, field in refused:
        response = await gw.client.post("/system/v1/erp/invoices", json=_invoice(line), headers=_headers(gw))
        assert _fields(response) == [field]
    assert len(gw.sandbox_state("netsuite").records["invoice"]) == invoices_before


async def test_the_contract_states_the_bound_the_server_enforces(gw: Any) -> None:
    schema = (await gw.client.get("/system/v1/schema/openapi.json")).json()["components"]["schemas"]
    amount = schema["ProjectMoney"]["properties"]["amount"]
    assert amount["type"] == "string"
    assert amount["maxLength"] == len("21474836.47")
    pattern = re.compile(amount["pattern"])
    assert pattern.fullmatch("21474836.47")
    assert not pattern.fullmatch("21474836.48")
    assert not pattern.fullmatch("1.005")
    unit_price = schema["InvoiceLineInput"]["properties"]["unit_price"]
    assert not re.fullmatch(unit_price["pattern"], TWENTY_NINE_DIGITS)
    assert re.fullmatch(unit_price["pattern"], "9999999.99999")
    schedule_amount = schema["BillingScheduleLine"]["properties"]["amount"]["oneOf"][0]
    assert re.fullmatch(schedule_amount["pattern"], "999999999999999.99")
    assert not re.fullmatch(schedule_amount["pattern"], "1000000000000000")
