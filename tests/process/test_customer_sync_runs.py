"""Customer master sync over HTTP on the whole gateway in process: CRM accounts become ERP customers, and a
probable duplicate already in the ERP waits for finance instead of becoming a second customer."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from apis.config import Settings
from sandboxes.netsuite.data import DUPLICATE_CUSTOMER_ID
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID

SYNCS = "/process/v1/customer-syncs"
FINAL = {"completed", "cancelled", "failed"}


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    workflows = {
        "step_backoff_base_seconds": 0.05,
        "step_backoff_max_seconds": 0.2,
        "step_max_attempts": 3,
        "poll_interval_seconds": 0.1,
    }
    return await make_gateway(make_settings(workflows=workflows))


def _wayne_account_id(gw: Any) -> str:
    accounts = gw.sandbox_state("salesforce").records["Account"].values()
    (account_id,) = [a["Id"] for a in accounts if a["Name"] == "Wayne Capital Partners LLC"]
    return str(account_id)


def _erp_customers(gw: Any, crm_customer_id: str) -> list[str]:
    customers = gw.sandbox_state("netsuite").records["customer"].values()
    return sorted(str(c["id"]) for c in customers if c.get("externalId") == crm_customer_id)


def _wayne_customers(gw: Any) -> list[str]:
    customers = gw.sandbox_state("netsuite").records["customer"].values()
    return sorted(
        str(c["id"]) for c in customers if str(c.get("companyName", "")).startswith("Wayne Capital")
    )


async def _start(gw: Any, account_ids: list[str], key: str) -> httpx.Response:
    headers = {**gw.auth("process:run"), "Idempotency-Key": key, "Prefer": "wait=30"}
    response: httpx.Response = await gw.client.post(SYNCS, json={"account_ids": account_ids}, headers=headers)
    return response


async def _until(gw: Any, run_id: str, *states: str, seconds: float = 45) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        response = await gw.client.get(
            f"{SYNCS}/{run_id}", headers={**gw.auth("process:read"), "Prefer": "wait=5"}
        )
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        if run["state"] in states:
            return run
        assert run["state"] not in FINAL, f"run {run_id} ended {run['state']}, not {states}: {run}"
        assert time.monotonic() < deadline, f"run {run_id} is still {run['state']}, not {states}: {run}"
        await asyncio.sleep(0.05)


async def test_a_probable_duplicate_waits_for_finance_and_is_linked_not_duplicated(gw: Any) -> None:
    wayne = _wayne_account_id(gw)
    assert _wayne_customers(gw) == [DUPLICATE_CUSTOMER_ID]
    key = uuid.uuid4().hex

    response = await _start(gw, [DEMO_ACCOUNT_ID, wayne], key)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"{SYNCS}/{response.json()['id']}"
    run = response.json()
    assert (run["workflow"], run["state"]) == ("customer_sync", "exception"), run
    issue = run["issue"]
    assert (issue["kind"], issue["owner"], issue["code"]) == (
        "exception",
        "finance",
        "probable-duplicate-customer",
    )
    # Only Wayne waits; Northwind went through.
    assert list(issue["data"]["accounts"]) == [wayne]
    matches = issue["data"]["accounts"][wayne]["matches"]
    assert [m["erp_customer_id"] for m in matches] == [DUPLICATE_CUSTOMER_ID]
    assert matches[0]["reason"] in ("name+tax_id", "name+domain")
    assert issue["data"]["synced"] == [DEMO_ACCOUNT_ID]
    (northwind,) = _erp_customers(gw, DEMO_ACCOUNT_ID)
    assert _erp_customers(gw, wayne) == []
    assert _wayne_customers(gw) == [DUPLICATE_CUSTOMER_ID]

    finance = await gw.client.get(
        "/process/v1/exceptions", params={"owner": "finance"}, headers=gw.auth("process:read")
    )
    assert finance.status_code == 200, finance.text
    assert run["id"] in [item["id"] for item in finance.json()["items"]]

    # The same request again (same Idempotency-Key) is the same run, and syncs nothing more.
    again = await _start(gw, [DEMO_ACCOUNT_ID, wayne], key)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == run["id"]
    assert _erp_customers(gw, DEMO_ACCOUNT_ID) == [northwind]

    # Finance decides 1002 is Wayne: it links the ERP customer to the CRM account, then replays.
    gw.sandbox_state("netsuite").records["customer"][DUPLICATE_CUSTOMER_ID]["externalId"] = wayne
    replay = await gw.client.post(
        f"/process/v1/runs/{run['id']}/replay",
        headers={**gw.auth("process:admin"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert replay.status_code == 202, replay.text
    done = await _until(gw, run["id"], "completed")

    synced = {s["crm_customer_id"]: s["erp_customer_id"] for s in done["result"]["synced"]}
    assert synced == {DEMO_ACCOUNT_ID: northwind, wayne: DUPLICATE_CUSTOMER_ID}
    assert _erp_customers(gw, wayne) == [DUPLICATE_CUSTOMER_ID]
    assert _wayne_customers(gw) == [DUPLICATE_CUSTOMER_ID]
    assert _erp_customers(gw, DEMO_ACCOUNT_ID) == [northwind]
    # The CRM owns the name: the linked customer now carries the account's.
    linked = gw.sandbox_state("netsuite").records["customer"][DUPLICATE_CUSTOMER_ID]
    assert linked["companyName"] == "Wayne Capital Partners LLC"
    # Only Wayne's step ran again.
    wayne_steps = [s["outcome"] for s in done["steps"] if s["name"] == f"erp.sync_customer.{wayne}"]
    northwind_steps = [
        s["outcome"] for s in done["steps"] if s["name"] == f"erp.sync_customer.{DEMO_ACCOUNT_ID}"
    ]
    assert (wayne_steps, northwind_steps) == (["failed", "completed"], ["completed"])

    events = await gw.client.get(
        "/process/v1/events", params={"type": "customer.synced"}, headers=gw.auth("process:read")
    )
    assert events.status_code == 200, events.text
    assert sorted(e["subject"] for e in events.json()["items"]) == sorted([DEMO_ACCOUNT_ID, wayne])


async def test_another_idempotency_key_is_another_sync(gw: Any) -> None:
    first = await _start(gw, [DEMO_ACCOUNT_ID], uuid.uuid4().hex)
    second = await _start(gw, [DEMO_ACCOUNT_ID], uuid.uuid4().hex)
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json()["id"] != second.json()["id"]
    for response in (first, second):
        run = await _until(gw, response.json()["id"], "completed")
        assert [s["crm_customer_id"] for s in run["result"]["synced"]] == [DEMO_ACCOUNT_ID]
    # Both runs updated the one customer.
    assert len(_erp_customers(gw, DEMO_ACCOUNT_ID)) == 1
