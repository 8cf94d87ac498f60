"""The Kantata adapter: unit tests over ``httpx.MockTransport``, then against the Kantata sandbox in process
over ``httpx.ASGITransport``.

Kantata has no idempotency, so most of what matters here is that a create, however it fails, never leaves
two records for one business key: tried twice, answered late, answered garbled, or not answered at all.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from decimal import Decimal
from typing import Any

import httpx
import pytest
from litestar import Litestar

from apis.config import KantataSettings
from contracts.models import (
    MilestoneInput,
    MilestoneStatus,
    Money,
    ProjectCreate,
    ProjectStatus,
    StaffingDemandCreate,
)
from sandboxes.kantata import KantataSandboxSettings, create_kantata_sandbox
from sandboxes.kantata.data import (
    ARCHIVED_WORKSPACE_ID,
    BIG_WORKSPACE_ID,
    BIG_WORKSPACE_TIME_ENTRY_COUNT,
    DEMO_WORKSPACE_ID,
    EUR_WORKSPACE_ID,
    PROJECT_MANAGER_USER_ID,
)
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorRejected,
    VendorTimeout,
    VendorUnavailable,
)
from system_apis.psa.kantata import (
    RATE_LIMITED_RETRY_AFTER,
    InvalidCursor,
    KantataPsa,
    PageCursor,
    decode_cursor,
    encode_cursor,
    query_fingerprint,
)
from system_apis.psa.port import MAX_LISTING_PAGE, PeriodFilter, PsaPort
from system_apis.vendor_http import BreakerPolicy, RetryPolicy

BASE_URL = "http://kantata.test/api/v1"
TOKEN = "stratum-kantata-sandbox-token"
Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


def _command(key: str = "006Dn00000NEWPRJ1", *, milestones: int = 2) -> ProjectCreate:
    return ProjectCreate(
        external_key=key,
        name=f"Activation {key}",
        customer_id="001Dn000005uXjzIAE",
        currency="USD",
        budget=Money(amount=Decimal("125000.50"), currency="USD"),
        start_date=dt.date(2026, 4, 1),
        end_date=dt.date(2026, 9, 30),
        manager_id=PROJECT_MANAGER_USER_ID,
        milestones=[
            MilestoneInput(
                name=f"Milestone {n}",
                due_date=dt.date(2026, 4 + n, 1),
                amount=Money(amount=Decimal("10000.25") * n, currency="USD"),
            )
            for n in range(1, milestones + 1)
        ],
    )


def _demand(key: str = "006Dn00000NEWPRJ1:staff:1", role: str = "Senior Consultant") -> StaffingDemandCreate:
    return StaffingDemandCreate(
        external_key=key,
        role=role,
        hours=Decimal("120.5"),
        start_date=dt.date(2026, 4, 1),
        end_date=dt.date(2026, 6, 30),
    )


# =======================================================================================================
# Unit tests over MockTransport
# =======================================================================================================


def _envelope(
    key: str, records: list[dict[str, Any]], *, total: int | None = None, **side: Any
) -> dict[str, Any]:
    count = len(records) if total is None else total
    return {
        "count": count,
        "meta": {"count": count, "page_count": 1, "page_number": 1, "page_size": 200},
        "results": [{"key": key, "id": record["id"]} for record in records],
        key: {record["id"]: record for record in records},
        **side,
    }


def _mock_psa(handler: Handler, **settings: Any) -> KantataPsa:
    async def no_sleep(_: float) -> None:
        return None

    return KantataPsa(
        KantataSettings(base_url=BASE_URL, **settings),
        transport=httpx.MockTransport(handler),
        breaker=BreakerPolicy(failure_threshold=0),
        sleep=no_sleep,
    )


def test_cursor_round_trip() -> None:
    cursor = PageCursor(page=7, per_page=200, fingerprint=query_fingerprint("time_entries", {"a": "1"}))
    text = encode_cursor(cursor)
    assert "=" not in text
    assert decode_cursor(text) == cursor


def test_a_fingerprint_depends_on_every_filter_but_not_their_order() -> None:
    one = query_fingerprint("time_entries", {"workspace_id": "1", "approved": "true"})
    assert one == query_fingerprint("time_entries", {"approved": "true", "workspace_id": "1"})
    assert one != query_fingerprint("time_entries", {"workspace_id": "2", "approved": "true"})
    assert one != query_fingerprint("expenses", {"workspace_id": "1", "approved": "true"})


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "====",
        "A" * 500,
        _b64("k1.2.50"),
        _b64("k1.1.50.0123456789abcdef"),  # page 1 is never continued
        _b64("k1.2.201.0123456789abcdef"),  # above Kantata's page size
        _b64("k1.2.1001.0123456789abcdef"),  # above the largest page
        _b64("k1.2.0.0123456789abcdef"),
        _b64("k2.2.50.0123456789abcdef"),
        _b64("k1.2.50.0123456789ABCDEF"),
        _b64("k1.-2.50.0123456789abcdef"),
        base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
    ],
)
async def test_a_bad_cursor_is_rejected_before_calling_kantata(cursor: str) -> None:
    calls: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=_envelope("time_entries", []))

    psa = _mock_psa(handler)
    try:
        with pytest.raises(InvalidCursor):
            await psa.list_time_entries(PeriodFilter(), limit=50, cursor=cursor)
        with pytest.raises(InvalidCursor):
            await psa.list_projects(limit=50, cursor=cursor)
    finally:
        await psa.close()
    assert calls == []


async def test_filters_and_auth_as_kantata_expects_them() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_envelope("time_entries", []))

    psa = KantataPsa(
        KantataSettings(base_url=BASE_URL, token="t0k3n"),
        transport=httpx.MockTransport(handler),
        correlation_id=lambda: "req-42",
    )
    try:
        await psa.list_time_entries(
            PeriodFilter(
                project_id="31800002",
                date_from=dt.date(2026, 1, 1),
                date_to=dt.date(2026, 1, 31),
                approved=True,
                modified_since=dt.datetime(2026, 2, 1, 10, 0, 0, 500000, tzinfo=dt.UTC),
            ),
            limit=120,
        )
        await psa.list_expenses(PeriodFilter(date_from=dt.date(2026, 1, 1), approved=False), limit=5)
    finally:
        await psa.close()
    time_call, expense_call = seen
    assert time_call.url.path == "/api/v1/time_entries.json"
    assert dict(time_call.url.params) == {
        "workspace_id": "31800002",
        "date_performed_between": "2026-01-01:2026-01-31",
        "approved": "true",
        # Kantata's updated_after is exclusive and in whole seconds: from the second before.
        "updated_after": "2026-02-01T09:59:59+00:00",
        "from_archived_workspaces": "true",
        "order": "id:asc",
        "page": "1",
        "per_page": "120",
    }
    assert time_call.headers["Authorization"] == "Bearer t0k3n"
    assert time_call.headers["X-Correlation-ID"] == "req-42"
    assert expense_call.url.path == "/api/v1/expenses.json"
    # developer.kantata.com/kantata/specification/expenses/get-expenses names the date filter
    # `date_expensed_between`; `approved` can only ask for approved records, so `approved=false` is not sent.
    assert expense_call.url.params["date_expensed_between"] == "2026-01-01:2999-12-31"
    assert "approved" not in expense_call.url.params


@pytest.mark.parametrize(
    "query",
    [
        PeriodFilter(project_id="not-a-kantata-id"),
        PeriodFilter(project_id="../users"),
        PeriodFilter(date_from=dt.date(2026, 2, 1), date_to=dt.date(2026, 1, 31)),
    ],
)
async def test_a_filter_nothing_can_match_is_answered_without_calling_kantata(query: PeriodFilter) -> None:
    calls: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    psa = _mock_psa(handler)
    try:
        assert (await psa.list_time_entries(query, limit=10)).items == []
        assert (await psa.list_expenses(query, limit=10)).items == []
    finally:
        await psa.close()
    assert calls == []


async def test_a_vendor_that_ignores_the_reference_filter_gets_no_create() -> None:
    """Were Kantata to ignore the filter, "not in this page" would not mean "not there": refuse to guess."""
    posts: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(request)
        reference = {
            "id": "1",
            "subject_type": "Workspace",
            "subject_id": "10",
            "service_name": "Salesforce",
            "service_model_ref": "006SOMETHINGELSE",
        }
        return httpx.Response(200, json=_envelope("external_references", [reference]))

    psa = _mock_psa(handler)
    try:
        with pytest.raises(VendorBadResponse, match="ignored the external reference filter"):
            await psa.create_project(_command())
    finally:
        await psa.close()
    assert posts == []


async def test_of_two_workspaces_with_one_key_the_oldest_is_the_project() -> None:
    shown: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/external_references.json"):
            references = [
                {
                    "id": str(n),
                    "subject_type": "Workspace",
                    "subject_id": subject,
                    "service_name": "Stratum",
                    "service_model_ref": "k-1",
                }
                for n, subject in ((1, "900"), (2, "80"))
            ]
            return httpx.Response(200, json=_envelope("external_references", references))
        if path.startswith("/api/v1/workspaces/"):
            workspace_id = path.rsplit("/", 1)[1].removesuffix(".json")
            shown.append(workspace_id)
            return httpx.Response(200, json=_envelope("workspaces", [{"id": workspace_id, "title": "w"}]))
        return httpx.Response(200, json=_envelope("stories", []))

    psa = _mock_psa(handler)
    try:
        project = await psa.find_project("k-1")
    finally:
        await psa.close()
    assert project is not None
    assert project.id == "80"
    assert shown == ["80"]


async def test_a_role_name_is_looked_up_in_kantatas_roles() -> None:
    created: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/workspace_resources.json") and request.method == "GET":
            existing = {"id": "5", "workspace_id": "31", "role_id": "7", "title": "Analyst"}
            return httpx.Response(200, json=_envelope("workspace_resources", [existing]))
        if path.endswith("/roles.json"):
            roles = [{"id": "7", "name": "Analyst"}, {"id": "9", "name": "Data Engineer"}]
            return httpx.Response(200, json=_envelope("roles", roles))
        body = json.loads(request.content)["workspace_resource"]
        created.append(body)
        record = {"id": "6", **body, "role_name": "Data Engineer"}
        return httpx.Response(200, json=_envelope("workspace_resources", [record]))

    psa = _mock_psa(handler)
    try:
        demand, was_created = await psa.create_staffing_demand("31", _demand("k:1", role="  data engineer"))
        with pytest.raises(VendorRejected, match="no role named 'Astronaut'"):
            await psa.create_staffing_demand("31", _demand("k:2", role="Astronaut"))
    finally:
        await psa.close()
    assert was_created
    assert created[0]["role_id"] == "9"
    assert demand.role == "Data Engineer"
    assert demand.external_key == "k:1"


async def test_429_without_retry_after_is_retried_then_unavailable_with_a_default_wait() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(429, json={"errors": [{"type": "system", "message": "Rate limit exceeded"}]})

    psa = _mock_psa(handler)
    try:
        with pytest.raises(VendorUnavailable) as caught:
            await psa.get_project("31800001")
    finally:
        await psa.close()
    assert caught.value.retry_after == RATE_LIMITED_RETRY_AFTER
    assert calls == 3


async def test_a_listing_that_never_ends_is_a_bad_response() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/workspaces/1.json"):
            return httpx.Response(200, json=_envelope("workspaces", [{"id": "1", "title": "w"}]))
        # Claims a million stories, but every page is empty.
        return httpx.Response(200, json=_envelope("stories", [], total=1_000_000))

    psa = _mock_psa(handler)
    try:
        with pytest.raises(VendorBadResponse, match="did not end"):
            await psa.get_project("1")
    finally:
        await psa.close()


# =======================================================================================================
# Against the sandbox
# =======================================================================================================


class Sandbox:
    """The sandbox app plus an admin client and a way to build adapters pointed at it."""

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self.transport = httpx.ASGITransport(app=app)
        self.admin = httpx.AsyncClient(transport=self.transport, base_url="http://kantata.test")
        self.sleeps: list[float] = []
        self.adapters: list[KantataPsa] = []

    @property
    def records(self) -> dict[str, dict[str, dict[str, Any]]]:
        records: dict[str, dict[str, dict[str, Any]]] = self.app.state.sandbox.records
        return records

    async def no_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def psa(
        self,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        **settings: Any,
    ) -> KantataPsa:
        psa = KantataPsa(
            KantataSettings(base_url=BASE_URL, **settings),
            transport=transport or self.transport,
            retry=retry or RetryPolicy(max_attempts=3),
            breaker=BreakerPolicy(failure_threshold=0),
            sleep=sleep or self.no_sleep,
        )
        self.adapters.append(psa)
        return psa

    async def fault(self, **rule: Any) -> None:
        rule.setdefault("path_pattern", "^/api/v1/")
        response = await self.admin.post("/__sandbox/faults", json=rule)
        assert response.status_code == 201, response.text

    async def api_requests(self) -> list[dict[str, Any]]:
        response = await self.admin.get("/__sandbox/stats")
        requests: list[dict[str, Any]] = response.json()["requests"]
        return [r for r in requests if r["path"].startswith("/api/")]

    async def posts(self) -> list[dict[str, Any]]:
        return [r for r in await self.api_requests() if r["method"] == "POST"]

    def workspaces_with_key(self, key: str) -> list[dict[str, Any]]:
        """Workspaces carrying our reference to ``key``, and any workspace made under its title."""
        ids = {
            ref["subject_id"]
            for ref in self.records["external_references"].values()
            if ref["service_name"] == "Stratum"
            and ref["service_model_ref"] == key
            and ref["subject_type"] == "Workspace"
        }
        return [
            w
            for w in self.records["workspaces"].values()
            if w["id"] in ids or w["title"] == f"Activation {key}"
        ]

    def milestones_of(self, workspace_id: str) -> list[dict[str, Any]]:
        return [
            s
            for s in self.records["stories"].values()
            if s["workspace_id"] == workspace_id and s["story_type"] == "milestone"
        ]

    def resources_with_key(self, key: str) -> list[dict[str, Any]]:
        return [r for r in self.records["workspace_resources"].values() if key in (r.get("title") or "")]

    async def close(self) -> None:
        for psa in self.adapters:
            await psa.close()
        await self.admin.aclose()


def _sandbox(**settings: Any) -> Sandbox:
    # Lots of headroom: the per-second limit is tested on its own, not tripped by a fast test.
    settings.setdefault("requests_per_second", 100_000)
    return Sandbox(create_kantata_sandbox(KantataSandboxSettings(**settings)))


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = _sandbox()
    yield box
    await box.close()


@pytest.fixture
async def psa(sandbox: Sandbox) -> KantataPsa:
    return sandbox.psa()


# --- reads ---------------------------------------------------------------------------------------------


async def test_the_adapter_is_a_psa_port(psa: KantataPsa) -> None:
    assert isinstance(psa, PsaPort)
    assert psa.vendor == "kantata"


async def test_get_project_with_its_milestones(sandbox: Sandbox, psa: KantataPsa) -> None:
    project = await psa.get_project(DEMO_WORKSPACE_ID)
    workspace = sandbox.records["workspaces"][DEMO_WORKSPACE_ID]
    assert project.id == DEMO_WORKSPACE_ID
    assert project.name == workspace["title"]
    assert project.status is ProjectStatus.ACTIVE
    assert project.currency == "USD"
    assert project.budget == Money(amount=Decimal(workspace["price_in_cents"]) / 100, currency="USD")
    assert project.manager_id == PROJECT_MANAGER_USER_ID
    assert project.start_date == dt.date.fromisoformat(workspace["start_date"])
    assert project.system_ids.psa == DEMO_WORKSPACE_ID
    # Only milestones, in Kantata's order, each with its exact amount.
    expected = sorted(sandbox.milestones_of(DEMO_WORKSPACE_ID), key=lambda s: int(s["id"]))
    assert [m.id for m in project.milestones] == [s["id"] for s in expected]
    for milestone, story in zip(project.milestones, expected, strict=True):
        assert milestone.amount == Money(
            amount=Decimal(story["budget_estimate_in_cents"]) / 100, currency="USD"
        )
        assert (
            milestone.status
            is {
                "completed": MilestoneStatus.COMPLETED,
                "started": MilestoneStatus.IN_PROGRESS,
                "not started": MilestoneStatus.NOT_STARTED,
            }[story["state"]]
        )
    # The seeded link is Salesforce's own, not a key Stratum created the project under.
    assert project.external_key is None


async def test_an_archived_project_is_still_found(psa: KantataPsa) -> None:
    project = await psa.get_project(ARCHIVED_WORKSPACE_ID)
    assert project.status is ProjectStatus.COMPLETED  # completed, then archived
    assert project.currency == "EUR"


async def test_unknown_projects_are_not_found(sandbox: Sandbox, psa: KantataPsa) -> None:
    with pytest.raises(NotFound):
        await psa.get_project("31899999")
    with pytest.raises(NotFound):
        await psa.get_project("912000001")  # a story's id is no workspace
    with pytest.raises(NotFound):
        await psa.list_staffing_demands("31899999")
    with pytest.raises(NotFound):
        await psa.close_project("31899999")
    assert await psa.find_project("no-such-key") is None


@pytest.mark.parametrize("bad_id", ["", "abc", "31800001.json", "../users", "1 OR 1=1", "3" * 40])
async def test_malformed_ids_are_not_found_without_calling_kantata(
    sandbox: Sandbox, psa: KantataPsa, bad_id: str
) -> None:
    with pytest.raises(NotFound):
        await psa.get_project(bad_id)
    with pytest.raises(NotFound):
        await psa.close_project(bad_id)
    with pytest.raises(NotFound):
        await psa.list_staffing_demands(bad_id)
    with pytest.raises(NotFound):
        await psa.create_staffing_demand(bad_id, _demand())
    assert await sandbox.api_requests() == []


async def _all_time(
    psa: KantataPsa, query: PeriodFilter, *, limit: int, full_pages: bool = True
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await psa.list_time_entries(query, limit=limit, cursor=cursor)
        pages.append([entry.id for entry in page.items])
        if page.next_cursor is None:
            return pages
        assert len(page.items) == limit or not full_pages
        cursor = page.next_cursor
        assert len(pages) < 100, "paging does not end"


async def test_paging_over_more_than_200_time_entries_gives_every_entry_once(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    pages = await _all_time(psa, PeriodFilter(project_id=BIG_WORKSPACE_ID), limit=200)
    ids = [entry for page in pages for entry in page]
    assert [len(page) for page in pages] == [200, BIG_WORKSPACE_TIME_ENTRY_COUNT - 200]
    assert len(ids) == len(set(ids)) == BIG_WORKSPACE_TIME_ENTRY_COUNT
    expected = {
        e["id"] for e in sandbox.records["time_entries"].values() if e["workspace_id"] == BIG_WORKSPACE_ID
    }
    assert set(ids) == expected


async def test_time_entries_map_exactly(sandbox: Sandbox, psa: KantataPsa) -> None:
    entries = [
        entry
        for page in await _paging_items(psa, PeriodFilter(project_id=BIG_WORKSPACE_ID))
        for entry in page
    ]
    records = sandbox.records["time_entries"]
    for entry in entries:
        record = records[entry.id]
        assert entry.project_id == BIG_WORKSPACE_ID
        assert entry.date == dt.date.fromisoformat(record["date_performed"])
        assert entry.hours == (Decimal(record["time_in_minutes"]) / 60).quantize(Decimal("0.01"))
        assert entry.rate == Money(amount=Decimal(record["rate_in_cents"]) / 100, currency=record["currency"])
        assert (entry.billable, entry.approved) == (record["billable"], record["approved"])
        assert entry.person_id == record["user_id"]


async def _paging_items(psa: KantataPsa, query: PeriodFilter) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        page = await psa.list_time_entries(query, limit=100, cursor=cursor)
        pages.append(list(page.items))
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_a_cursor_continues_at_another_page_size_when_pages_line_up(psa: KantataPsa) -> None:
    query = PeriodFilter(project_id=BIG_WORKSPACE_ID)
    everything = [i for page in await _all_time(psa, query, limit=200) for i in page]
    first = await psa.list_time_entries(query, limit=50)
    assert first.next_cursor is not None
    smaller = await psa.list_time_entries(query, limit=25, cursor=first.next_cursor)
    assert [e.id for e in smaller.items] == everything[50:75]
    with pytest.raises(InvalidCursor):
        await psa.list_time_entries(query, limit=100, cursor=first.next_cursor)  # 50 is no page boundary
    again = await psa.list_time_entries(query, limit=50, cursor=first.next_cursor)
    assert [e.id for e in again.items] == everything[50:100]


async def test_a_cursor_belongs_to_its_query(sandbox: Sandbox, psa: KantataPsa) -> None:
    first = await psa.list_time_entries(PeriodFilter(project_id=BIG_WORKSPACE_ID), limit=10)
    assert first.next_cursor is not None
    before = len(await sandbox.api_requests())
    with pytest.raises(InvalidCursor):
        await psa.list_time_entries(
            PeriodFilter(project_id=DEMO_WORKSPACE_ID), limit=10, cursor=first.next_cursor
        )
    with pytest.raises(InvalidCursor):
        await psa.list_expenses(PeriodFilter(project_id=BIG_WORKSPACE_ID), limit=10, cursor=first.next_cursor)
    assert len(await sandbox.api_requests()) == before


class _Seen(httpx.AsyncBaseTransport):
    """The sandbox's transport, noting each Kantata page asked for as it starts and as it is answered."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, failing_page: str | None = None) -> None:
        self.inner = inner
        self.failing_page = failing_page
        self.events: list[tuple[str, str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        page, per_page = request.url.params.get("page", ""), request.url.params.get("per_page", "")
        self.events.append(("start", page, per_page))
        if page == self.failing_page:
            return httpx.Response(500, json={"errors": [{"type": "system", "message": "boom"}]})
        response = await self.inner.handle_async_request(request)
        self.events.append(("end", page, per_page))
        return response

    def asked(self) -> list[tuple[str, str]]:
        return [(page, per_page) for kind, page, per_page in self.events if kind == "start"]


async def test_a_page_of_up_to_1000_time_entries_is_kantatas_pages_of_200_the_first_then_the_rest_at_once(
    sandbox: Sandbox,
) -> None:
    seen = _Seen(sandbox.transport)
    psa = sandbox.psa(transport=seen)
    every = [i for page in await _all_time(psa, PeriodFilter(), limit=200) for i in page]
    assert len(every) == len(set(every)) == len(sandbox.records["time_entries"]) > 4 * 200
    seen.events.clear()
    page = await psa.list_time_entries(PeriodFilter(), limit=MAX_LISTING_PAGE)
    assert [e.id for e in page.items] == every
    assert page.next_cursor is None
    # Kantata's first page says how many there are; the others are asked for only then, all of them.
    pages = -(-len(every) // 200)
    assert seen.events[:2] == [("start", "1", "200"), ("end", "1", "200")]
    assert sorted(seen.asked()[1:], key=lambda a: int(a[0])) == [(str(p), "200") for p in range(2, pages + 1)]
    # One project's 260: two of Kantata's pages, not five.
    seen.events.clear()
    big = await psa.list_time_entries(PeriodFilter(project_id=BIG_WORKSPACE_ID), limit=MAX_LISTING_PAGE)
    assert len(big.items) == BIG_WORKSPACE_TIME_ENTRY_COUNT
    assert big.next_cursor is None
    assert seen.asked() == [("1", "200"), ("2", "200")]


@pytest.mark.parametrize("limit", [201, 300, 400, 1000])
async def test_large_pages_that_do_not_line_up_with_kantatas_give_every_entry_once_in_order(
    psa: KantataPsa, limit: int
) -> None:
    every = [i for page in await _all_time(psa, PeriodFilter(), limit=200) for i in page]
    pages = await _all_time(psa, PeriodFilter(), limit=limit)  # full pages but the last
    assert [i for page in pages for i in page] == every
    assert len(pages) == -(-len(every) // limit)


async def test_a_large_pages_cursor_continues_where_it_ended_and_only_its_own_query(psa: KantataPsa) -> None:
    query = PeriodFilter()
    every = [i for page in await _all_time(psa, query, limit=200) for i in page]
    first = await psa.list_time_entries(query, limit=400)
    assert [e.id for e in first.items] == every[:400]
    assert first.next_cursor is not None
    again = await psa.list_time_entries(query, limit=400, cursor=first.next_cursor)
    assert [e.id for e in again.items] == every[400:800]
    # At another page size, where 400 is a page boundary: the same place; elsewhere refused.
    smaller = await psa.list_time_entries(query, limit=200, cursor=first.next_cursor)
    assert [e.id for e in smaller.items] == every[400:600]
    for limit in (300, MAX_LISTING_PAGE):
        with pytest.raises(InvalidCursor):
            await psa.list_time_entries(query, limit=limit, cursor=first.next_cursor)
    with pytest.raises(InvalidCursor):
        await psa.list_time_entries(
            PeriodFilter(project_id=BIG_WORKSPACE_ID), limit=400, cursor=first.next_cursor
        )
    with pytest.raises(InvalidCursor):
        await psa.list_expenses(query, limit=400, cursor=first.next_cursor)
    # A cursor of pages of 100 continues in a page of 1,000 only where 1,000 lines up.
    hundred = await psa.list_time_entries(query, limit=100)
    with pytest.raises(InvalidCursor):
        await psa.list_time_entries(query, limit=MAX_LISTING_PAGE, cursor=hundred.next_cursor)
    with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
        await psa.list_time_entries(query, limit=MAX_LISTING_PAGE + 1)
    with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
        await psa.list_expenses(query, limit=MAX_LISTING_PAGE + 1)


async def test_a_page_of_up_to_1000_expenses_is_the_concatenation_of_smaller_pages(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    small: list[str] = []
    cursor: str | None = None
    while True:
        page = await psa.list_expenses(PeriodFilter(), limit=7, cursor=cursor)
        small.extend(e.id for e in page.items)
        if (cursor := page.next_cursor) is None:
            break
    large = await psa.list_expenses(PeriodFilter(), limit=MAX_LISTING_PAGE)
    assert [e.id for e in large.items] == small
    assert len(small) == len(sandbox.records["expenses"])
    assert large.next_cursor is None
    approved = await psa.list_expenses(PeriodFilter(approved=True), limit=MAX_LISTING_PAGE)
    assert approved.items
    assert all(e.approved for e in approved.items)


async def test_a_large_page_fails_as_a_whole_when_one_of_kantatas_pages_fails(sandbox: Sandbox) -> None:
    failing = sandbox.psa(transport=_Seen(sandbox.transport, failing_page="3"))
    with pytest.raises(VendorBadResponse):
        await failing.list_time_entries(PeriodFilter(), limit=MAX_LISTING_PAGE)
    first = await failing.list_time_entries(PeriodFilter(), limit=400)  # Kantata's pages 1 and 2
    with pytest.raises(VendorBadResponse):
        await failing.list_time_entries(PeriodFilter(), limit=400, cursor=first.next_cursor)
    # The same error as that page of 200 read on its own.
    with pytest.raises(VendorBadResponse):
        await failing.list_time_entries(PeriodFilter(), limit=200, cursor=first.next_cursor)
    await sandbox.fault(kind="outage")
    for limit in (200, MAX_LISTING_PAGE):
        with pytest.raises(VendorUnavailable):
            await sandbox.psa().list_time_entries(PeriodFilter(), limit=limit)
        with pytest.raises(VendorUnavailable):
            await sandbox.psa().list_expenses(PeriodFilter(), limit=limit)


async def test_time_entry_filters(sandbox: Sandbox, psa: KantataPsa) -> None:
    records = [e for e in sandbox.records["time_entries"].values() if e["workspace_id"] == BIG_WORKSPACE_ID]
    first, last = dt.date(2026, 1, 5), dt.date(2026, 1, 30)
    query = PeriodFilter(project_id=BIG_WORKSPACE_ID, date_from=first, date_to=last, approved=True)
    ids = {i for page in await _all_time(psa, query, limit=20) for i in page}
    expected = {
        e["id"]
        for e in records
        if first.isoformat() <= e["date_performed"] <= last.isoformat() and e["approved"]
    }
    assert expected, "the seed should have some of these"
    assert ids == expected
    # Kantata cannot filter for unapproved time (its `approved` filter ignores the value), so the adapter
    # reads every entry and keeps the unapproved ones: pages may then be short.
    pages = await _all_time(psa, PeriodFilter(approved=False), limit=200, full_pages=False)
    unapproved = {i for page in pages for i in page}
    assert unapproved == {e["id"] for e in sandbox.records["time_entries"].values() if not e["approved"]}


async def test_modified_since_includes_changes_at_that_very_second(sandbox: Sandbox, psa: KantataPsa) -> None:
    # Timesheets are approved in batches at one instant: that instant itself must be included.
    stamps = sorted({e["updated_at"] for e in sandbox.records["time_entries"].values()})
    moment = dt.datetime.fromisoformat(stamps[len(stamps) // 2])
    query = PeriodFilter(modified_since=moment)
    ids = {i for page in await _all_time(psa, query, limit=200) for i in page}
    expected = {
        e["id"]
        for e in sandbox.records["time_entries"].values()
        if dt.datetime.fromisoformat(e["updated_at"]) >= moment
    }
    assert any(
        dt.datetime.fromisoformat(e["updated_at"]) == moment for e in sandbox.records["time_entries"].values()
    )
    assert ids == expected


async def test_time_of_a_closed_project_is_still_listed(sandbox: Sandbox, psa: KantataPsa) -> None:
    page = await psa.list_time_entries(PeriodFilter(project_id=ARCHIVED_WORKSPACE_ID), limit=200)
    expected = {
        e["id"]
        for e in sandbox.records["time_entries"].values()
        if e["workspace_id"] == ARCHIVED_WORKSPACE_ID
    }
    assert expected
    assert {e.id for e in page.items} == expected


async def test_expenses_with_exact_amounts(sandbox: Sandbox, psa: KantataPsa) -> None:
    expenses = []
    cursor: str | None = None
    while True:
        page = await psa.list_expenses(PeriodFilter(), limit=7, cursor=cursor)
        expenses.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    records = sandbox.records["expenses"]
    assert len(expenses) == len({e.id for e in expenses}) == len(records)
    for expense in expenses:
        record = records[expense.id]
        assert expense.amount == Money(
            amount=Decimal(record["amount_in_cents"]) / 100, currency=record["currency"]
        )
        assert (expense.billable, expense.approved) == (record["is_billable"], record["approved"])
        assert expense.category == record["category"]
    eur = await psa.list_expenses(PeriodFilter(project_id=EUR_WORKSPACE_ID, approved=True), limit=200)
    assert {e.id for e in eur.items} == {
        r["id"] for r in records.values() if r["workspace_id"] == EUR_WORKSPACE_ID and r["approved"]
    }
    assert all(e.amount.currency == "EUR" for e in eur.items)


async def test_listing_projects_pages_through_all_of_them_archived_ones_included(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await psa.list_projects(limit=7, cursor=cursor)
        seen.extend(p.id for p in page.items)
        for project in page.items:
            assert {m.id for m in project.milestones} == {s["id"] for s in sandbox.milestones_of(project.id)}
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == len(sandbox.records["workspaces"])
    assert ARCHIVED_WORKSPACE_ID in seen


async def test_listing_projects_changed_since(sandbox: Sandbox, psa: KantataPsa) -> None:
    stamps = sorted({w["updated_at"] for w in sandbox.records["workspaces"].values()})
    moment = dt.datetime.fromisoformat(stamps[-5])
    page = await psa.list_projects(limit=200, modified_since=moment)
    expected = {
        w["id"]
        for w in sandbox.records["workspaces"].values()
        if dt.datetime.fromisoformat(w["updated_at"]) >= moment
    }
    assert {p.id for p in page.items} == expected
    assert page.next_cursor is None


# --- creating projects: once per key -------------------------------------------------------------------


async def test_creating_twice_with_one_key_makes_one_workspace_and_its_milestones_once(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    """The sandbox refuses a workspace create without `creator_role` or with `price_in_cents`, as the
    specification shipped with mavenlink_gem says Kantata does: this create passing is the adapter sending
    what the real API accepts."""
    command = _command(milestones=3)
    project, created = await psa.create_project(command)
    assert created
    assert project.external_key == command.external_key
    assert project.status is ProjectStatus.PLANNED  # a new workspace is "Not Started"
    assert project.budget == Money(amount=Decimal("125000.50"), currency="USD")
    assert project.manager_id == PROJECT_MANAGER_USER_ID
    assert [m.name for m in project.milestones] == ["Milestone 1", "Milestone 2", "Milestone 3"]
    assert [m.amount for m in project.milestones] == [
        Money(amount=Decimal(amount), currency="USD") for amount in ("10000.25", "20000.50", "30000.75")
    ]
    again, created_again = await psa.create_project(command)
    assert not created_again
    assert again.id == project.id
    assert [m.id for m in again.milestones] == [m.id for m in project.milestones]
    assert len(sandbox.workspaces_with_key(command.external_key)) == 1
    assert len(sandbox.milestones_of(project.id)) == 3
    assert len(await sandbox.posts()) == 2  # one workspace, one bulk of milestones
    # The workspace is Kantata's own: what Kantata holds is what we sent.
    workspace = sandbox.records["workspaces"][project.id]
    assert workspace["price_in_cents"] == 12500050
    assert (await psa.find_project(command.external_key)) == again


async def test_another_adapter_instance_finds_the_project_too(sandbox: Sandbox, psa: KantataPsa) -> None:
    project, _ = await psa.create_project(_command())
    # Nothing is remembered in the adapter: another worker, another process, finds it in Kantata.
    again, created = await sandbox.psa().create_project(_command())
    assert (again.id, created) == (project.id, False)


async def test_a_lost_answer_to_the_create_is_recovered_in_the_same_call(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    command = _command()
    # Kantata creates the workspace, but its answer arrives cut off.
    await sandbox.fault(kind="malformed", method="POST", path_pattern="^/api/v1/workspaces", times=1)
    project, created = await psa.create_project(command)
    assert created
    assert len(sandbox.workspaces_with_key(command.external_key)) == 1
    assert len(project.milestones) == 2
    again, created_again = await psa.create_project(command)
    assert (again.id, created_again) == (project.id, False)
    assert len(sandbox.workspaces_with_key(command.external_key)) == 1
    assert len(sandbox.milestones_of(project.id)) == 2


class LosingTransport(httpx.AsyncBaseTransport):
    """Delivers a create to the sandbox, then loses its answer (a read timeout) and, for a while, the
    network too, so the adapter cannot confirm in the same call what happened."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path_suffix: str) -> None:
        self.inner = inner
        self.path_suffix = path_suffix
        self.armed = True
        self.network_down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.network_down:
            raise httpx.ConnectError("network unreachable", request=request)
        response = await self.inner.handle_async_request(request)
        if self.armed and request.method == "POST" and request.url.path.endswith(self.path_suffix):
            self.armed = False
            self.network_down = True
            await response.aclose()
            raise httpx.ReadTimeout("the answer never came", request=request)
        return response


async def test_after_a_lost_answer_the_next_call_finds_the_project_instead_of_creating_another(
    sandbox: Sandbox,
) -> None:
    command = _command()
    losing = LosingTransport(sandbox.transport, "/workspaces.json")
    psa = sandbox.psa(transport=losing)
    with pytest.raises(VendorTimeout):
        await psa.create_project(command)
    assert len(sandbox.workspaces_with_key(command.external_key)) == 1  # it did happen
    assert sandbox.milestones_of(sandbox.workspaces_with_key(command.external_key)[0]["id"]) == []
    losing.network_down = False
    project, created = await psa.create_project(command)
    assert not created
    assert len(sandbox.workspaces_with_key(command.external_key)) == 1
    # The retry finished the job: the milestones the first call never got to.
    assert len(project.milestones) == 2
    assert len(sandbox.milestones_of(project.id)) == 2


async def test_a_create_that_hangs_times_out_and_the_next_call_creates_it_once(sandbox: Sandbox) -> None:
    command = _command()
    psa = sandbox.psa(timeout_seconds=0.2, retry=RetryPolicy(max_attempts=1))
    await sandbox.fault(
        kind="hang", method="POST", path_pattern="^/api/v1/workspaces", latency_ms=5_000, times=1
    )
    with pytest.raises(VendorTimeout):
        await psa.create_project(command)
    project, created = await psa.create_project(command)
    assert created
    again, created_again = await psa.create_project(command)
    assert (again.id, created_again) == (project.id, False)
    assert len(sandbox.workspaces_with_key(command.external_key)) == 1


async def test_a_create_is_never_retried(sandbox: Sandbox, psa: KantataPsa) -> None:
    command = _command()
    await sandbox.fault(kind="error", status=503, method="POST", path_pattern="^/api/v1/workspaces", times=1)
    with pytest.raises(VendorUnavailable):
        await psa.create_project(command)
    assert [r["path"] for r in await sandbox.posts()] == ["/api/v1/workspaces.json"]
    assert sandbox.workspaces_with_key(command.external_key) == []
    _, created = await psa.create_project(command)
    assert created
    assert len(sandbox.workspaces_with_key(command.external_key)) == 1


async def test_a_rerun_after_failed_milestones_creates_only_the_missing_ones(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    command = _command(milestones=3)
    await sandbox.fault(kind="error", status=500, method="POST", path_pattern="^/api/v1/stories", times=1)
    with pytest.raises(VendorBadResponse):
        await psa.create_project(command)
    [workspace] = sandbox.workspaces_with_key(command.external_key)
    assert sandbox.milestones_of(workspace["id"]) == []
    project, created = await psa.create_project(command)
    assert not created
    assert len(project.milestones) == 3
    # A longer plan on a later run adds only the new milestone; the first three stay as they are.
    longer, _ = await psa.create_project(_command(milestones=4))
    assert [m.id for m in longer.milestones[:3]] == [m.id for m in project.milestones]
    assert len(sandbox.milestones_of(workspace["id"])) == 4


async def test_lost_milestone_answers_are_confirmed_not_repeated(sandbox: Sandbox, psa: KantataPsa) -> None:
    await sandbox.fault(kind="malformed", method="POST", path_pattern="^/api/v1/stories", times=1)
    project, created = await psa.create_project(_command(milestones=2))
    assert created
    assert len(project.milestones) == 2
    assert len(sandbox.milestones_of(project.id)) == 2


async def test_kantatas_validation_errors_are_rejected_with_its_error_type(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    command = ProjectCreate(
        external_key="k-invalid", name="x", customer_id="c", currency="USD", manager_id="6199999"
    )
    with pytest.raises(VendorRejected) as caught:
        await psa.create_project(command)
    assert caught.value.vendor_code == "validation"
    assert "primary_maven_id" in caught.value.message
    assert len(await sandbox.posts()) == 1  # a 422 is final


async def test_a_budget_kantata_cannot_hold_is_rejected_before_writing(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    command = ProjectCreate(
        external_key="k-cents",
        name="x",
        customer_id="c",
        currency="USD",
        budget=Money(amount=Decimal("0.001"), currency="USD"),
    )
    with pytest.raises(VendorRejected, match="fractions of a cent"):
        await psa.create_project(command)
    assert await sandbox.posts() == []


# --- closing -------------------------------------------------------------------------------------------


async def test_closing_archives_once_and_closing_again_is_harmless(sandbox: Sandbox, psa: KantataPsa) -> None:
    project, _ = await psa.create_project(_command())
    closed = await psa.close_project(project.id)
    assert closed.status is ProjectStatus.CLOSED
    assert closed.external_key == project.external_key
    assert [m.id for m in closed.milestones] == [m.id for m in project.milestones]
    assert sandbox.records["workspaces"][project.id]["archived"] is True
    again = await psa.close_project(project.id)
    assert again.status is ProjectStatus.CLOSED
    puts = [r for r in await sandbox.api_requests() if r["method"] == "PUT"]
    assert len(puts) == 1
    assert (await psa.get_project(project.id)).status is ProjectStatus.CLOSED
    # A closed project still answers for its key: activating again does not make a new one.
    found, created = await psa.create_project(_command())
    assert (found.id, created) == (project.id, False)
    assert found.status is ProjectStatus.CLOSED


# --- staffing ------------------------------------------------------------------------------------------


async def test_staffing_demands_of_a_project(sandbox: Sandbox, psa: KantataPsa) -> None:
    demands = await psa.list_staffing_demands(DEMO_WORKSPACE_ID)
    records = [
        r for r in sandbox.records["workspace_resources"].values() if r["workspace_id"] == DEMO_WORKSPACE_ID
    ]
    assert [d.id for d in demands] == sorted((r["id"] for r in records), key=int)
    for demand, record in zip(demands, sorted(records, key=lambda r: int(r["id"])), strict=True):
        assert demand.role == record["role_name"]
        assert demand.hours == (Decimal(record["allocated_minutes"]) / 60).quantize(Decimal("0.01"))
        assert demand.assignee_id == record["user_id"]


async def test_staffing_demand_is_raised_once_per_key(sandbox: Sandbox, psa: KantataPsa) -> None:
    project, _ = await psa.create_project(_command())
    demand, created = await psa.create_staffing_demand(project.id, _demand())
    assert created
    assert (demand.project_id, demand.role, demand.hours) == (
        project.id,
        "Senior Consultant",
        Decimal("120.50"),
    )
    assert demand.external_key == _demand().external_key
    assert demand.assignee_id is None
    assert (demand.start_date, demand.end_date) == (dt.date(2026, 4, 1), dt.date(2026, 6, 30))
    again, created_again = await psa.create_staffing_demand(project.id, _demand())
    assert (again.id, created_again) == (demand.id, False)
    # A role may also be named by its Kantata id.
    other, created_other = await psa.create_staffing_demand(project.id, _demand("other:staff:2", role="4206"))
    assert created_other
    assert other.role == "Data Engineer"
    assert len(sandbox.resources_with_key(_demand().external_key)) == 1
    assert {d.external_key for d in await psa.list_staffing_demands(project.id)} == {
        _demand().external_key,
        "other:staff:2",
    }


async def test_a_lost_answer_to_a_staffing_demand_is_recovered(sandbox: Sandbox, psa: KantataPsa) -> None:
    await sandbox.fault(kind="malformed", method="POST", path_pattern="^/api/v1/workspace_resources", times=1)
    demand, created = await psa.create_staffing_demand(DEMO_WORKSPACE_ID, _demand())
    assert created
    again, created_again = await psa.create_staffing_demand(DEMO_WORKSPACE_ID, _demand())
    assert (again.id, created_again) == (demand.id, False)
    assert len(sandbox.resources_with_key(_demand().external_key)) == 1


async def test_staffing_an_unknown_project_is_not_found_and_writes_nothing(
    sandbox: Sandbox, psa: KantataPsa
) -> None:
    with pytest.raises(NotFound):
        await psa.create_staffing_demand("31899999", _demand())
    assert await sandbox.posts() == []


async def test_an_unknown_role_is_rejected_before_writing(sandbox: Sandbox, psa: KantataPsa) -> None:
    with pytest.raises(VendorRejected, match="no role named 'Astronaut'"):
        await psa.create_staffing_demand(DEMO_WORKSPACE_ID, _demand(role="Astronaut"))
    assert await sandbox.posts() == []


# --- limits, auth and faults ---------------------------------------------------------------------------


class FrozenClock:
    """The sandbox's rate window runs on this clock; ``sleep`` moves it on when told to."""

    def __init__(self, *, advance_on_sleep: bool) -> None:
        self.now = 1_780_000_000.0
        self.advance_on_sleep = advance_on_sleep
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance_on_sleep:
            self.now += 1.0  # backing off waits into the next second


async def test_kantatas_rate_limit_is_ridden_out_by_backing_off() -> None:
    box = _sandbox(requests_per_second=1)
    clock = FrozenClock(advance_on_sleep=True)
    box.app.state.sandbox.clock = clock
    try:
        project = await box.psa(sleep=clock.sleep).get_project(DEMO_WORKSPACE_ID)
        assert project.milestones
        assert [r["status"] for r in await box.api_requests()] == [200, 429, 200]
        assert len(clock.sleeps) == 1
    finally:
        await box.close()


async def test_a_lasting_rate_limit_is_unavailable_with_a_wait_though_kantata_gives_none() -> None:
    box = _sandbox(requests_per_second=1)
    clock = FrozenClock(advance_on_sleep=False)
    box.app.state.sandbox.clock = clock
    try:
        with pytest.raises(VendorUnavailable) as caught:
            await box.psa(sleep=clock.sleep).get_project(DEMO_WORKSPACE_ID)
        assert caught.value.retry_after == RATE_LIMITED_RETRY_AFTER
        assert [r["status"] for r in await box.api_requests()] == [200, 429, 429, 429]
    finally:
        await box.close()


async def test_a_rate_limited_create_is_not_retried_and_makes_nothing() -> None:
    box = _sandbox(requests_per_second=1)
    clock = FrozenClock(advance_on_sleep=False)
    box.app.state.sandbox.clock = clock
    try:
        with pytest.raises(VendorUnavailable) as caught:
            await box.psa(sleep=clock.sleep).create_project(_command())
        assert caught.value.retry_after == RATE_LIMITED_RETRY_AFTER
        # One look, one refused create, and no second look: a refused create did not happen.
        assert [(r["method"], r["status"]) for r in await box.api_requests()] == [("GET", 200), ("POST", 429)]
        assert box.workspaces_with_key(_command().external_key) == []
    finally:
        await box.close()


async def test_a_refused_token_is_credentials_rejected_and_not_retried(sandbox: Sandbox) -> None:
    psa = sandbox.psa(token="not-the-token")
    with pytest.raises(VendorUnavailable, match="credentials rejected") as caught:
        await psa.get_project(DEMO_WORKSPACE_ID)
    assert "not-the-token" not in caught.value.message
    assert [r["status"] for r in await sandbox.api_requests()] == [401]


async def test_a_brief_outage_is_ridden_out_by_retries(sandbox: Sandbox, psa: KantataPsa) -> None:
    await sandbox.fault(kind="outage", status=503, times=2)
    assert (await psa.get_project(DEMO_WORKSPACE_ID)).id == DEMO_WORKSPACE_ID
    assert [r["status"] for r in await sandbox.api_requests()][:3] == [503, 503, 200]


async def test_a_lasting_outage_is_unavailable(sandbox: Sandbox, psa: KantataPsa) -> None:
    await sandbox.fault(kind="outage", status=503)
    with pytest.raises(VendorUnavailable):
        await psa.list_time_entries(PeriodFilter(), limit=10)
    assert [r["status"] for r in await sandbox.api_requests()] == [503, 503, 503]


async def test_500_is_a_bad_response_and_not_retried(sandbox: Sandbox, psa: KantataPsa) -> None:
    await sandbox.fault(
        kind="error",
        status=500,
        body='{"errors":[{"type":"system","message":"An unexpected error occurred"}]}',
    )
    with pytest.raises(VendorBadResponse):
        await psa.get_project(DEMO_WORKSPACE_ID)
    assert len(await sandbox.api_requests()) == 1


async def test_a_malformed_body_is_a_bad_response(sandbox: Sandbox, psa: KantataPsa) -> None:
    await sandbox.fault(kind="malformed")
    with pytest.raises(VendorBadResponse):
        await psa.get_project(DEMO_WORKSPACE_ID)
    with pytest.raises(VendorBadResponse):
        await psa.list_time_entries(PeriodFilter(project_id=BIG_WORKSPACE_ID), limit=10)
    with pytest.raises(VendorBadResponse):
        await psa.list_expenses(PeriodFilter(), limit=10)


@pytest.mark.parametrize(
    "body",
    [
        '{"results": [{"key": "workspaces", "id": "1"}], "workspaces": {}}',
        '{"results": [], "workspaces": {}}',
        '{"results": [{"key": "workspaces", "id": "1"}], "workspaces": {"1": {"id": "1"}}}',
        '{"results": [{"key": "workspaces", "id": "1"}],'
        ' "workspaces": {"1": {"id": "1", "title": "x", "start_date": "soon"}}}',
    ],
)
async def test_a_body_that_does_not_hold_the_record_is_a_bad_response(
    sandbox: Sandbox, psa: KantataPsa, body: str
) -> None:
    await sandbox.fault(kind="error", status=200, body=body, path_pattern="^/api/v1/workspaces/")
    with pytest.raises(VendorBadResponse):
        await psa.get_project(DEMO_WORKSPACE_ID)


async def test_a_hanging_kantata_times_out(sandbox: Sandbox) -> None:
    psa = sandbox.psa(timeout_seconds=0.2, retry=RetryPolicy(max_attempts=2))
    await sandbox.fault(kind="hang", latency_ms=30_000)
    with pytest.raises(VendorTimeout):
        await psa.list_time_entries(PeriodFilter(), limit=10)


async def test_the_breaker_stops_calls_to_a_failing_kantata(sandbox: Sandbox) -> None:
    psa = KantataPsa(
        KantataSettings(base_url=BASE_URL),
        transport=sandbox.transport,
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(failure_threshold=2, cooldown_seconds=60),
    )
    sandbox.adapters.append(psa)
    await sandbox.fault(kind="error", status=500)
    for _ in range(2):
        with pytest.raises(VendorBadResponse):
            await psa.get_project(DEMO_WORKSPACE_ID)
    with pytest.raises(VendorUnavailable) as caught:
        await psa.get_project(DEMO_WORKSPACE_ID)
    assert caught.value.retry_after is not None
    assert len(await sandbox.api_requests()) == 2
