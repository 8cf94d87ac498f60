"""PSA billing through the system tier (in-process gateway, Kantata sandbox): the unbilled items of a
project, an invoice recorded once per billing key against exactly its items (even when Kantata's answer is
lost), finalize, cancel, and payments told once each."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator
from typing import Any

import httpx
import msgspec
import pytest

from apis.config import Settings
from contracts.models import PsaInvoiceCreate, PsaPaymentRecord
from sandboxes.kantata.data import (
    ARCHIVED_WORKSPACE_ID,
    BIG_WORKSPACE_ID,
    DEMO_WORKSPACE_ID,
    EUR_WORKSPACE_ID,
)
from system_apis.client import SystemApiClient

THROUGH = "2026-03-01"


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def _read(gw: Any) -> dict[str, str]:
    headers: dict[str, str] = gw.auth("system:read")
    return headers


def _write(gw: Any) -> dict[str, str]:
    return {**gw.auth("system:read system:write"), "Idempotency-Key": uuid.uuid4().hex}


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    fast = {"timeout_seconds": 0.5, "breaker_failure_threshold": 0}
    # Paging every project's items 7 at a time makes hundreds of Kantata calls a second on a quiet machine:
    # over the mounted sandbox's 200 a second, Kantata's 429 would fail the listing (a local run met it).
    harness = await make_gateway(make_settings(kantata=fast, sandbox_kantata_requests_per_second=10_000))
    harness.sandbox_state("kantata").reset()  # every item of the seed unbilled again
    return harness


async def _items(
    gw: Any,
    *,
    limit: int = 200,
    project: str = DEMO_WORKSPACE_ID,
    of: list[str] | None = None,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """A project's billable items, every page; ``of``: several projects' in one listing."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    path = (
        f"/system/v1/psa/projects/{project}/billable-items" if of is None else "/system/v1/psa/billable-items"
    )
    while True:
        params: dict[str, Any] = {"through": THROUGH, "limit": limit}
        if of is not None:
            params["project_id"] = ",".join(of)
        if kind is not None:
            params["kind"] = kind
        if cursor is not None:
            params["cursor"] = cursor
        response = await gw.client.get(path, params=params, headers=_read(gw))
        assert response.status_code == 200, response.text
        items.extend(response.json()["items"])
        if (cursor := response.json()["next_cursor"]) is None:
            return items


def _invoice(key: str, items: list[dict[str, Any]], *, draft: bool = True) -> dict[str, Any]:
    return {
        "external_key": key,
        "project_id": DEMO_WORKSPACE_ID,
        "currency": "USD",
        "invoice_date": "2026-03-01",
        "due_date": "2026-03-31",
        "time_entry_ids": [i["id"] for i in items if i["kind"] == "time"],
        "expense_ids": [i["id"] for i in items if i["kind"] == "expense"],
        "milestone_ids": [i["id"] for i in items if i["kind"] == "milestone"],
        "draft": draft,
    }


def _invoices_with_key(gw: Any, key: str) -> list[str]:
    refs = gw.sandbox_state("kantata").records["external_references"].values()
    return [r["subject_id"] for r in refs if r["subject_type"] == "Invoice" and r["service_model_ref"] == key]


async def test_billable_items_page_through_every_kind_once(gw: Any) -> None:
    whole = await _items(gw)
    paged = await _items(gw, limit=9)
    assert [(i["kind"], i["id"]) for i in paged] == [(i["kind"], i["id"]) for i in whole]
    assert {i["kind"] for i in whole} == {"time", "expense", "milestone"}
    assert all(i["date"] <= THROUGH and i["invoiced"] is False for i in whole)


async def test_billable_items_need_a_through_date_and_a_known_project(gw: Any) -> None:
    path = f"/system/v1/psa/projects/{DEMO_WORKSPACE_ID}/billable-items"
    no_date = await gw.client.get(path, headers=_read(gw))
    assert no_date.status_code == 422
    assert no_date.json()["code"] == "validation-failed"
    missing = await gw.client.get(
        "/system/v1/psa/projects/31899999/billable-items", params={"through": THROUGH}, headers=_read(gw)
    )
    assert missing.status_code == 404


async def test_several_projects_billable_items_are_one_listing_of_each_ones_items(gw: Any) -> None:
    projects = [DEMO_WORKSPACE_ID, BIG_WORKSPACE_ID, EUR_WORKSPACE_ID, ARCHIVED_WORKSPACE_ID]
    each = [item for project in projects for item in await _items(gw, project=project)]
    log = gw.sandbox_state("kantata").request_log
    log.clear()
    together = await _items(gw, of=[*projects, "31899999"])  # one the PSA does not have: no items, no 404
    calls = len(log)

    def key(item: dict[str, Any]) -> tuple[str, str]:
        return (item["kind"], item["id"])

    assert sorted(together, key=key) == sorted(each, key=key)
    assert {i["project_id"] for i in together} >= {DEMO_WORKSPACE_ID, BIG_WORKSPACE_ID}
    assert {i["kind"] for i in together} == {"time", "expense", "milestone"}
    # The same question asked once: a listing's calls (time, expenses, then the milestones with their
    # projects and billing schedules), not a listing's per project.
    assert calls < 4 * len(projects)
    paged = await _items(gw, of=projects, limit=9)
    assert [key(i) for i in paged] == [key(i) for i in together]


async def test_several_projects_billable_items_one_kind_at_a_time_are_the_listings_kinds(gw: Any) -> None:
    projects = [DEMO_WORKSPACE_ID, BIG_WORKSPACE_ID, EUR_WORKSPACE_ID]
    together = await _items(gw, of=projects)
    by_kind: list[dict[str, Any]] = []
    for kind in ("time", "expense", "milestone", "retainer"):
        found = await _items(gw, of=projects, kind=kind, limit=7)
        assert {i["kind"] for i in found} <= {kind}
        by_kind.extend(found)
    assert [(i["kind"], i["id"]) for i in by_kind] == [(i["kind"], i["id"]) for i in together]


async def test_several_projects_billable_items_take_at_most_fifty_and_their_own_cursor(gw: Any) -> None:
    path = "/system/v1/psa/billable-items"
    too_many = ",".join(str(31800000 + n) for n in range(51))
    refused = await gw.client.get(
        path, params={"project_id": too_many, "through": THROUGH}, headers=_read(gw)
    )
    assert refused.status_code == 422
    first = await gw.client.get(
        path, params={"project_id": DEMO_WORKSPACE_ID, "through": THROUGH, "limit": 1}, headers=_read(gw)
    )
    cursor = first.json()["next_cursor"]
    other = await gw.client.get(
        path,
        params={"project_id": BIG_WORKSPACE_ID, "through": THROUGH, "limit": 1, "cursor": cursor},
        headers=_read(gw),
    )
    assert other.status_code == 422


async def _listed(gw: Any, path: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
        response = await gw.client.get(path, params=query, headers=_read(gw))
        assert response.status_code == 200, response.text
        found.extend(response.json()["items"])
        if (cursor := response.json()["next_cursor"]) is None:
            return found


@pytest.mark.parametrize("path", ["/system/v1/psa/time-entries", "/system/v1/psa/expenses"])
async def test_several_projects_time_and_expenses_are_one_listing_of_each_ones(gw: Any, path: str) -> None:
    projects = [DEMO_WORKSPACE_ID, BIG_WORKSPACE_ID, EUR_WORKSPACE_ID]
    each = [r for project in projects for r in await _listed(gw, path, project_id=project)]
    together = await _listed(gw, path, project_ids=",".join([*projects, "31899999"]))
    assert each
    assert sorted(r["id"] for r in together) == sorted(r["id"] for r in each)
    # With project_id as well, both apply.
    one = await _listed(gw, path, project_id=BIG_WORKSPACE_ID, project_ids=",".join(projects))
    assert {r["project_id"] for r in one} <= {BIG_WORKSPACE_ID}
    none = await _listed(gw, path, project_id=BIG_WORKSPACE_ID, project_ids=DEMO_WORKSPACE_ID)
    assert none == []


async def _pages_of(gw: Any, path: str, *, limit: int, **params: Any) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await gw.client.get(path, params=query, headers=_read(gw))
        assert response.status_code == 200, response.text
        pages.append(response.json()["items"])
        if (cursor := response.json()["next_cursor"]) is None:
            return pages
        assert len(pages) < 100, "paging does not end"


@pytest.mark.parametrize("path", ["/system/v1/psa/time-entries", "/system/v1/psa/expenses"])
async def test_time_and_expenses_page_up_to_1000_as_the_concatenation_of_pages_of_200(
    gw: Any, path: str
) -> None:
    of_200 = [r for page in await _pages_of(gw, path, limit=200) for r in page]
    log = gw.sandbox_state("kantata").request_log
    log.clear()
    large = await _pages_of(gw, path, limit=1000)
    assert [r for page in large for r in page] == of_200
    assert len(large) == -(-len(of_200) // 1000)
    # Kantata's pages of 200 behind one of ours: as many calls as there are of them, no more.
    assert len(log) == -(-len(of_200) // 200)
    # Pages that do not line up with Kantata's: the same records, in the same order.
    assert [r for page in await _pages_of(gw, path, limit=300) for r in page] == of_200
    projects = ",".join([DEMO_WORKSPACE_ID, BIG_WORKSPACE_ID, EUR_WORKSPACE_ID])
    several = await _pages_of(gw, path, limit=1000, project_ids=projects)
    assert [r for page in several for r in page] == [
        r for page in await _pages_of(gw, path, limit=200, project_ids=projects) for r in page
    ]


@pytest.mark.parametrize("path", ["/system/v1/psa/time-entries", "/system/v1/psa/expenses"])
async def test_time_and_expenses_refuse_a_page_above_1000_and_a_cursor_of_another_size(
    gw: Any, path: str
) -> None:
    for limit in (0, 1001):
        refused = await gw.client.get(path, params={"limit": limit}, headers=_read(gw))
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "validation-failed"
    first = await gw.client.get(path, params={"limit": 7}, headers=_read(gw))
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    # Page 2 of pages of 7 starts at 7: no page of 1,000 starts there.
    other = await gw.client.get(path, params={"limit": 1000, "cursor": cursor}, headers=_read(gw))
    assert other.status_code == 422, other.text
    assert other.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("path", ["/system/v1/psa/time-entries", "/system/v1/psa/expenses"])
async def test_a_page_of_1000_answers_the_same_problem_as_a_small_one_when_kantata_is_down(
    gw: Any, path: str
) -> None:
    async with gw.sandbox("kantata") as sandbox:
        response = await sandbox.post("/__sandbox/faults", json={"kind": "outage"})
        assert response.status_code == 201, response.text
    small = await gw.client.get(path, params={"limit": 100}, headers=_read(gw))
    large = await gw.client.get(path, params={"limit": 1000}, headers=_read(gw))
    assert small.status_code in (502, 503, 504), small.text
    assert (large.status_code, large.json()["code"]) == (small.status_code, small.json()["code"])
    assert large.headers["content-type"].startswith("application/problem+json")


async def test_an_invoice_is_recorded_once_per_key_and_found_by_it(
    gw: Any, unique: Callable[[str], str]
) -> None:
    key = unique("bill")
    items = (await _items(gw))[:3]
    first = await gw.client.post("/system/v1/psa/invoices", json=_invoice(key, items), headers=_write(gw))
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/system/v1/psa/invoices/{first.json()['id']}"
    assert first.json()["status"] == "draft"
    again = await gw.client.post("/system/v1/psa/invoices", json=_invoice(key, items), headers=_write(gw))
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    found = await gw.client.get("/system/v1/psa/invoices", params={"external_key": key}, headers=_read(gw))
    assert [i["id"] for i in found.json()] == [first.json()["id"]]
    none = await gw.client.get(
        "/system/v1/psa/invoices", params={"external_key": key + "x"}, headers=_read(gw)
    )
    assert none.json() == []
    assert _invoices_with_key(gw, key) == [first.json()["id"]]
    left = {i["id"] for i in await _items(gw)}
    assert not left & {i["id"] for i in items}


async def test_a_create_whose_answer_was_lost_is_recorded_once(gw: Any, unique: Callable[[str], str]) -> None:
    key = unique("bill-lost")
    items = (await _items(gw))[:2]
    async with gw.sandbox("kantata") as sandbox:
        rule = {"kind": "lost", "method": "POST", "path_pattern": "/invoices", "latency_ms": 10, "times": 1}
        assert (await sandbox.post("/__sandbox/faults", json=rule)).status_code == 201
    first = await gw.client.post("/system/v1/psa/invoices", json=_invoice(key, items), headers=_write(gw))
    retry = await gw.client.post("/system/v1/psa/invoices", json=_invoice(key, items), headers=_write(gw))
    assert first.status_code in (200, 201, 503, 504), first.text
    assert retry.status_code in (200, 201), retry.text
    assert _invoices_with_key(gw, key) == [retry.json()["id"]]


async def test_an_item_already_invoiced_is_refused_by_name(gw: Any, unique: Callable[[str], str]) -> None:
    items = (await _items(gw))[:1]
    first = await gw.client.post(
        "/system/v1/psa/invoices", json=_invoice(unique("bill"), items), headers=_write(gw)
    )
    assert first.status_code == 201
    second = await gw.client.post(
        "/system/v1/psa/invoices", json=_invoice(unique("bill"), items), headers=_write(gw)
    )
    assert second.status_code == 422, second.text
    assert second.json()["code"] == "vendor-rejected"
    assert items[0]["id"] in second.json()["detail"]


async def test_finalize_cancel_and_payments_through_the_typed_client(
    gw: Any, unique: Callable[[str], str]
) -> None:
    client = SystemApiClient(
        base_url="http://testserver",
        auth=_Bearer(gw.token("system:read system:write")),
        transport=httpx.ASGITransport(app=gw.app),
    )
    try:
        key = unique("bill")
        items = (await _items(gw))[:2]
        command = msgspec.convert(_invoice(key, items), PsaInvoiceCreate)
        created = await client.create_psa_invoice(command, idempotency_key=uuid.uuid4().hex)
        assert (await client.find_psa_invoice(key)) == created
        issued = await client.finalize_psa_invoice(
            created.id, erp_invoice_id="INV-1", erp_invoice_number="SI-1", idempotency_key=uuid.uuid4().hex
        )
        assert issued.status.value == "open"
        assert issued.erp_invoice_id == "INV-1"
        payment = msgspec.convert(
            {
                "erp_payment_id": "PAY-1",
                "date": "2026-03-20",
                "amount": str(issued.total.amount),
                "currency": "USD",
                "balance": "0",
            },
            PsaPaymentRecord,
        )
        paid = await client.record_psa_payment(created.id, payment, idempotency_key=uuid.uuid4().hex)
        assert paid.status.value == "paid"
        again = await client.record_psa_payment(created.id, payment, idempotency_key=uuid.uuid4().hex)
        assert again.status.value == "paid"
        payments = gw.sandbox_state("kantata").records["external_payments"].values()
        assert len([p for p in payments if p["invoice_id"] == created.id]) == 1

        other = await client.create_psa_invoice(
            msgspec.convert(_invoice(unique("bill"), (await _items(gw))[:1]), PsaInvoiceCreate),
            idempotency_key=uuid.uuid4().hex,
        )
        cancelled = await client.cancel_psa_invoice(other.id, idempotency_key=uuid.uuid4().hex)
        assert cancelled.status.value == "cancelled"
        assert (await client.cancel_psa_invoice(other.id, idempotency_key=uuid.uuid4().hex)) == cancelled
        assert other.time_entry_ids[0] in {i["id"] for i in await _items(gw)}
    finally:
        await client.aclose()


async def _every_projects_items(
    gw: Any, *, limit: int, kind: str | None = None
) -> list[list[dict[str, Any]]]:
    """The pages of the account-wide listing (no ``project_id``)."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"through": THROUGH, "limit": limit}
        if kind is not None:
            params["kind"] = kind
        if cursor is not None:
            params["cursor"] = cursor
        response = await gw.client.get("/system/v1/psa/billable-items", params=params, headers=_read(gw))
        assert response.status_code == 200, response.text
        pages.append(response.json()["items"])
        if (cursor := response.json()["next_cursor"]) is None:
            return pages


async def test_every_projects_billable_items_are_the_union_of_each_projects_listing(gw: Any) -> None:
    projects = sorted(gw.sandbox_state("kantata").records["workspaces"])  # archived ones too
    each = [item for project in projects for item in await _items(gw, project=project)]
    log = gw.sandbox_state("kantata").request_log
    log.clear()
    pages = await _every_projects_items(gw, limit=1000)
    calls = len(log)
    every = [item for page in pages for item in page]

    def key(item: dict[str, Any]) -> tuple[str, str]:
        return (item["kind"], item["id"])

    assert len(each) > 200  # the seed: more than one of Kantata's pages
    assert sorted(every, key=key) == sorted(each, key=key)
    assert len({i["project_id"] for i in every}) >= 4
    assert [i["kind"] for i in every] == sorted(
        (i["kind"] for i in every), key=["time", "expense", "milestone"].index
    )
    # A page of 1,000 holds more than Kantata's 200 a page: a few listings' calls, not one a project.
    assert max(len(page) for page in pages) > 200
    assert calls < len(projects)
    # Paged small, across projects and kinds, or by a size that is not a multiple of Kantata's 200: the
    # same items in the same order, never more on a page than asked for.
    for limit in (7, 300):
        paged_pages = await _every_projects_items(gw, limit=limit)
        assert max(len(page) for page in paged_pages) <= limit
        paged = [item for page in paged_pages for item in page]
        assert [key(i) for i in paged] == [key(i) for i in every]
    # One kind at a time: that kind's items of the same listing.
    for kind in ("time", "expense", "milestone"):
        of_kind = [item for page in await _every_projects_items(gw, limit=300, kind=kind) for item in page]
        assert [key(i) for i in of_kind] == [key(i) for i in every if i["kind"] == kind]


async def test_every_projects_billable_items_refuse_a_bad_limit_and_anothers_cursor(gw: Any) -> None:
    path = "/system/v1/psa/billable-items"
    for limit in (0, 1001):
        refused = await gw.client.get(path, params={"through": THROUGH, "limit": limit}, headers=_read(gw))
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "validation-failed"
    no_date = await gw.client.get(path, headers=_read(gw))
    assert no_date.status_code == 422
    first = await gw.client.get(path, params={"through": THROUGH, "limit": 1}, headers=_read(gw))
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    # A cursor of the account-wide listing does not continue one project's, nor another page size.
    for params in ({"project_id": DEMO_WORKSPACE_ID, "limit": 1}, {"limit": 2}):
        other = await gw.client.get(
            path, params={"through": THROUGH, "cursor": cursor, **params}, headers=_read(gw)
        )
        assert other.status_code == 422, other.text


async def test_every_projects_billable_items_answer_a_problem_when_kantata_is_down(gw: Any) -> None:
    async with gw.sandbox("kantata") as sandbox:
        response = await sandbox.post("/__sandbox/faults", json={"kind": "outage"})
        assert response.status_code == 201, response.text
    down = await gw.client.get(
        "/system/v1/psa/billable-items", params={"through": THROUGH}, headers=_read(gw)
    )
    assert down.status_code in (502, 503, 504), down.text
    assert down.headers["content-type"].startswith("application/problem+json")
