"""The Kantata sandbox on the wire: what a Kantata client would notice, plus the seed's promises."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from sandboxes.faults import FaultRule, Receive, Scope, Send
from sandboxes.kantata import KantataSandbox, KantataSandboxSettings, create_kantata_sandbox
from sandboxes.kantata.app import DUPLICATE_EVERY
from sandboxes.kantata.data import (
    ADMIN_USER_ID,
    ARCHIVED_WORKSPACE_ID,
    BIG_WORKSPACE_ID,
    BIG_WORKSPACE_TIME_ENTRY_COUNT,
    DEMO_OPPORTUNITY_ID,
    DEMO_USER_ID,
    DEMO_WORKSPACE_ID,
    DEMO_WORKSPACE_TIME_ENTRY_COUNT,
    EUR_WORKSPACE_ID,
    GBP_WORKSPACE_ID,
    ID_START,
    INTERNAL_WORKSPACE_ID,
    PLANNED_WORKSPACE_ID,
    PROJECT_MANAGER_USER_ID,
    SALESFORCE_WELL_KNOWN_OPPORTUNITY_IDS,
    SEED_DATE,
    build_seed,
    salesforce_links,
)
from sandboxes.salesforce.data import READY_OPPORTUNITY_IDS
from sandboxes.salesforce.data import build_seed as build_salesforce_seed

BASE = "https://api.mavenlink.test"
API = "/api/v1"
TOKEN = "stratum-kantata-sandbox-token"
JSON_UTF8 = "application/json; charset=utf-8"
# After the wall clock (so frozen writes are the newest), on a second boundary: 2033-05-18T03:33:20Z.
T0 = 2_000_000_000.0
T0_STAMP = "2033-05-18T03:33:20+00:00"


class Account:
    """A client on one sandbox app with its token, and the raw app at hand for admin calls and the clock."""

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app

    @property
    def sandbox(self) -> KantataSandbox:
        sandbox: KantataSandbox = self.app.state.sandbox
        return sandbox

    def freeze(self, at: float) -> None:
        self.sandbox.clock = lambda: at

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
        response = await self.client.request(method, API + path, headers=headers, **kwargs)
        return response

    async def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.api(method, path, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == JSON_UTF8
        body: dict[str, Any] = response.json()
        return body

    async def all_pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Read every page the way tap-mavenlink does: page by page until ``meta.page_count``."""
        pages = []
        page = 1
        while True:
            body = await self.ok("GET", path, params={**params, "page": page})
            pages.append(body)
            if page >= body["meta"]["page_count"]:
                return pages
            page += 1


_APPS: dict[tuple[tuple[str, Any], ...], Any] = {}


@asynccontextmanager
async def account(**settings: Any) -> AsyncIterator[Account]:
    """A fresh account. Apps are reused after a reset (the isolation the sandbox promises other users);
    the rate limit is raised unless a test sets it, so no test depends on how fast the machine is."""
    settings.setdefault("requests_per_second", 100_000)
    key = tuple(sorted(settings.items()))
    app: Any = _APPS.get(key)
    if app is None:
        app = _APPS[key] = create_kantata_sandbox(KantataSandboxSettings(**settings))
    else:
        app.state.sandbox.reset()
    app.state.sandbox.clock = time.time
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield Account(client, app)


def records(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The primary records of an envelope, in `results` order (the id-keyed maps have no order)."""
    return [body[result["key"]][result["id"]] for result in body["results"]]


def ids(body: dict[str, Any]) -> list[str]:
    return [result["id"] for result in body["results"]]


def assert_errors(response: httpx.Response, status: int, kind: str) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON_UTF8
    body = response.json()
    assert set(body) == {"errors"}
    assert body["errors"]
    for error in body["errors"]:
        assert error["type"] == kind
        assert isinstance(error["message"], str)
        assert error["message"]
    errors: list[dict[str, Any]] = body["errors"]
    return errors


# `creator_role` is required on create: mavenlink_gem's lib/config/specification.yml (workspaces).
MAVEN = {"creator_role": "maven"}
NEW_WORKSPACE = {
    "workspace": {**MAVEN, "title": "Northwind Health - Data Platform Phase 3", "currency": "USD"}
}


# ---------------------------------------------------------------------------------------------------------
# Auth and limits
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "Bearer not-the-token", f"Token {TOKEN}", "Bearer ", "Basic c3RyYXR1bTp4"]
)
async def test_calls_without_a_valid_token_get_the_oauth_error(authorization: str | None) -> None:
    async with account() as kantata:
        headers = {} if authorization is None else {"Authorization": authorization}
        for path in (f"{API}/workspaces", f"{API}/workspaces.json", f"{API}/no/such/thing"):
            response = await kantata.client.get(path, headers=headers)
            assert response.status_code == 401
            assert response.headers["content-type"] == JSON_UTF8
            assert response.json() == {
                "errors": [{"type": "oauth", "message": "Invalid OAuth 2 Access Token"}]
            }


async def test_other_configured_tokens_are_accepted() -> None:
    async with account(tokens=("first", "second")) as kantata:
        second = await kantata.client.get(f"{API}/users", headers={"Authorization": "Bearer second"})
        default = await kantata.client.get(f"{API}/users", headers={"Authorization": f"Bearer {TOKEN}"})
    assert second.status_code == 200
    assert default.status_code == 401


async def test_over_the_rate_limit_answers_429_without_retry_after() -> None:
    async with account(requests_per_second=3) as kantata:
        kantata.freeze(T0 + 0.1)
        allowed = [(await kantata.api("GET", "/users")).status_code for _ in range(3)]
        limited = await kantata.api("GET", "/users")
        also_limited = await kantata.api("POST", "/workspaces", json=NEW_WORKSPACE)
        unauthenticated = await kantata.client.get(f"{API}/users")  # not counted, still 401
        kantata.freeze(T0 + 0.9)
        same_second = await kantata.api("GET", "/users")
        kantata.freeze(T0 + 1.0)
        next_second = await kantata.api("GET", "/users")
        listed = await kantata.ok("GET", "/workspaces", params={"search": "Data Platform Phase 3"})
    assert allowed == [200, 200, 200]
    errors = assert_errors(limited, 429, "system")
    assert "rate limit" in errors[0]["message"].lower()
    # Like Kantata: nothing tells the client how long to wait.
    assert "retry-after" not in limited.headers
    assert not [name for name in limited.headers if "ratelimit" in name.replace("-", "").lower()]
    assert also_limited.status_code == 429
    assert listed["count"] == 0  # the refused create did not happen
    assert unauthenticated.status_code == 401
    assert same_second.status_code == 429
    assert next_second.status_code == 200


# ---------------------------------------------------------------------------------------------------------
# Reading: envelope, paging, includes, filters
# ---------------------------------------------------------------------------------------------------------


async def test_the_envelope_keys_records_by_id_in_results_order() -> None:
    async with account() as kantata:
        body = await kantata.ok("GET", "/workspaces", params={"order": "title:desc", "per_page": 8})
        with_suffix = await kantata.ok(
            "GET", "/workspaces.json", params={"order": "title:desc", "per_page": 8}
        )
    assert list(body)[:3] == ["count", "meta", "results"]
    assert set(body) == {"count", "meta", "results", "workspaces"}
    assert body["count"] == body["meta"]["count"]
    assert body["meta"]["page_number"] == 1
    assert body["meta"]["page_size"] == 8
    assert body["meta"]["page_count"] == -(-body["count"] // 8)
    assert all(result["key"] == "workspaces" for result in body["results"])
    assert all(isinstance(i, str) and i.isdigit() for i in ids(body))
    assert set(body["workspaces"]) == set(ids(body))
    assert all(body["workspaces"][i]["id"] == i for i in ids(body))
    titles = [workspace["title"] for workspace in records(body)]
    assert titles == sorted(titles, reverse=True)
    # The id-keyed map is not in the requested order: only `results` is.
    assert list(body["workspaces"]) != ids(body)
    assert with_suffix == body


async def test_show_uses_the_same_envelope() -> None:
    async with account() as kantata:
        body = await kantata.ok("GET", f"/workspaces/{DEMO_WORKSPACE_ID}.json")
    assert body["count"] == 1
    assert body["results"] == [{"key": "workspaces", "id": DEMO_WORKSPACE_ID}]
    workspace = body["workspaces"][DEMO_WORKSPACE_ID]
    assert workspace["primary_maven_id"] == PROJECT_MANAGER_USER_ID
    assert workspace["status"] == {"color": "green", "key": 310, "message": "Active"}
    assert isinstance(workspace["price_in_cents"], int)
    assert workspace["currency"] in {"USD", "GBP", "EUR"}


async def test_paging_through_more_than_200_time_entries() -> None:
    async with account() as kantata:
        pages = await kantata.all_pages("/time_entries", {"workspace_id": BIG_WORKSPACE_ID, "per_page": 200})
        beyond = await kantata.ok(
            "GET", "/time_entries", params={"workspace_id": BIG_WORKSPACE_ID, "per_page": 200, "page": 3}
        )
    assert [len(page["results"]) for page in pages] == [200, BIG_WORKSPACE_TIME_ENTRY_COUNT - 200]
    assert [page["meta"] for page in pages] == [
        {"count": BIG_WORKSPACE_TIME_ENTRY_COUNT, "page_count": 2, "page_number": n, "page_size": 200}
        for n in (1, 2)
    ]
    every_id = [i for page in pages for i in ids(page)]
    assert len(every_id) == len(set(every_id)) == BIG_WORKSPACE_TIME_ENTRY_COUNT
    # tap-mavenlink reads the id-keyed dict's values: they must be exactly the page's records.
    assert sum(len(page["time_entries"]) for page in pages) == BIG_WORKSPACE_TIME_ENTRY_COUNT
    assert all(entry["workspace_id"] == BIG_WORKSPACE_ID for page in pages for entry in records(page))
    assert beyond["results"] == []
    assert beyond["count"] == BIG_WORKSPACE_TIME_ENTRY_COUNT


async def test_per_page_defaults_to_20_and_is_clamped_to_200() -> None:
    async with account() as kantata:
        default = await kantata.ok("GET", "/time_entries")
        clamped = await kantata.ok("GET", "/time_entries", params={"per_page": 1000})
        bad = await kantata.api("GET", "/time_entries", params={"per_page": "lots"})
    assert len(default["results"]) == 20
    assert default["meta"]["page_size"] == 20
    assert len(clamped["results"]) == 200
    assert clamped["meta"]["page_size"] == 200
    assert clamped["meta"]["page_count"] == -(-clamped["count"] // 200)
    assert assert_errors(bad, 422, "validation")[0]["field"] == "per_page"


async def test_include_side_loads_related_records() -> None:
    async with account() as kantata:
        plain = await kantata.ok("GET", f"/workspaces/{DEMO_WORKSPACE_ID}")
        included = await kantata.ok(
            "GET", f"/workspaces/{DEMO_WORKSPACE_ID}", params={"include": "participants,stories"}
        )
        entries = await kantata.ok(
            "GET", "/time_entries", params={"workspace_id": EUR_WORKSPACE_ID, "include": "workspace,user"}
        )
        unknown = await kantata.api("GET", "/workspaces", params={"include": "secrets"})
    assert set(plain) == {"count", "meta", "results", "workspaces"}
    assert "participant_ids" not in plain["workspaces"][DEMO_WORKSPACE_ID]
    workspace = included["workspaces"][DEMO_WORKSPACE_ID]
    assert {PROJECT_MANAGER_USER_ID, DEMO_USER_ID} <= set(workspace["participant_ids"])
    assert set(included["users"]) == set(workspace["participant_ids"])
    assert included["users"][DEMO_USER_ID]["full_name"] == "Aisha Khan"
    assert set(included["stories"]) == set(workspace["story_ids"])
    story_types = Counter(story["story_type"] for story in included["stories"].values())
    assert 2 <= story_types["milestone"] <= 5
    assert story_types["task"] >= story_types["milestone"]
    assert included["results"] == plain["results"]  # side-loaded records are not results
    assert set(entries["workspaces"]) == {EUR_WORKSPACE_ID}
    assert {entry["user_id"] for entry in records(entries)} == set(entries["users"])
    assert assert_errors(unknown, 422, "validation")[0]["field"] == "include"


async def test_time_entry_filters() -> None:
    async with account() as kantata:
        base = {"workspace_id": DEMO_WORKSPACE_ID, "per_page": 200}
        everything = records(await kantata.ok("GET", "/time_entries", params=base))
        january = records(
            await kantata.ok(
                "GET", "/time_entries", params={**base, "date_performed_between": "2026-01-01:2026-01-31"}
            )
        )
        unapproved = records(await kantata.ok("GET", "/time_entries", params={**base, "approved": "false"}))
        billable = records(await kantata.ok("GET", "/time_entries", params={**base, "billable": "true"}))
        mine = records(
            await kantata.ok("GET", "/time_entries", params={**base, "with_user_ids": DEMO_USER_ID})
        )
        by_date = records(
            await kantata.ok("GET", "/time_entries", params={**base, "order": "date_performed:desc"})
        )
        bad_range = await kantata.api("GET", "/time_entries", params={"date_performed_between": "2026-01-01"})
        any_approval = records(await kantata.ok("GET", "/time_entries", params={**base, "approved": "maybe"}))
    assert len(everything) == DEMO_WORKSPACE_TIME_ENTRY_COUNT
    assert january
    assert all("2026-01-01" <= entry["date_performed"] <= "2026-01-31" for entry in january)
    assert len(january) == sum("2026-01" in entry["date_performed"] for entry in everything)
    # developer.kantata.com/kantata/specification/time-entries/get-time-entries: `approved` "is always
    # processed as true; the actual value you provide is ignored".
    assert unapproved == any_approval
    assert all(entry["approved"] is True for entry in unapproved)
    assert 0 < len(unapproved) == sum(entry["approved"] for entry in everything) < len(everything)
    assert 0 < len(billable) < len(everything)
    assert all(entry["user_id"] == DEMO_USER_ID for entry in mine)
    assert mine
    dates = [entry["date_performed"] for entry in by_date]
    assert dates == sorted(dates, reverse=True)
    assert assert_errors(bad_range, 422, "validation")[0]["field"] == "date_performed_between"


async def test_other_list_filters() -> None:
    async with account() as kantata:
        milestones = records(
            await kantata.ok(
                "GET", "/stories", params={"workspace_id": DEMO_WORKSPACE_ID, "story_type": "milestone"}
            )
        )
        searched = records(await kantata.ok("GET", "/workspaces", params={"search": "pharmacovigilance"}))
        only = await kantata.ok(
            "GET", "/workspaces", params={"only": f"{GBP_WORKSPACE_ID},{EUR_WORKSPACE_ID}"}
        )
        staffing = records(
            await kantata.ok("GET", "/workspace_resources", params={"workspace_id": PLANNED_WORKSPACE_ID})
        )
        participants = await kantata.ok("GET", "/users", params={"participant_in": DEMO_WORKSPACE_ID})
        # "Fetching a list of Expenses" (developer.kantata.com/kantata/specification/expenses/get-expenses):
        # `date_expensed_between`, either side may be left empty.
        expenses = records(
            await kantata.ok(
                "GET", "/expenses", params={"date_expensed_between": "2026-02-01:2026-02-28", "per_page": 200}
            )
        )
        until_february = records(
            await kantata.ok(
                "GET", "/expenses", params={"date_expensed_between": ":2026-01-31", "per_page": 200}
            )
        )
        invoices = await kantata.ok("GET", "/invoices", params={"workspace_id": DEMO_WORKSPACE_ID})
        roles = await kantata.ok("GET", "/roles.json", params={"search": "senior consultant"})
    assert milestones
    assert {story["story_type"] for story in milestones} == {"milestone"}
    assert {story["workspace_id"] for story in milestones} == {DEMO_WORKSPACE_ID}
    assert [workspace["id"] for workspace in searched] == [GBP_WORKSPACE_ID]
    assert ids(only) == [EUR_WORKSPACE_ID, GBP_WORKSPACE_ID]
    assert any(resource["user_id"] is None for resource in staffing)  # an unstaffed request
    assert {DEMO_USER_ID, PROJECT_MANAGER_USER_ID} <= set(ids(participants))
    assert expenses
    assert all("2026-02-01" <= expense["date"] <= "2026-02-28" for expense in expenses)
    assert until_february
    assert all(expense["date"] <= "2026-01-31" for expense in until_february)
    assert all(DEMO_WORKSPACE_ID in invoice["workspace_ids"] for invoice in records(invoices))
    assert [role["name"] for role in records(roles)] == ["Senior Consultant"]


async def test_archived_workspaces_are_hidden_unless_asked_for() -> None:
    async with account() as kantata:
        default = await kantata.ok("GET", "/workspaces", params={"per_page": 200})
        everything = await kantata.ok(
            "GET", "/workspaces", params={"per_page": 200, "include_archived": "true"}
        )
        hidden = await kantata.api("GET", f"/workspaces/{ARCHIVED_WORKSPACE_ID}")
        shown = await kantata.ok(
            "GET", f"/workspaces/{ARCHIVED_WORKSPACE_ID}", params={"include_archived": "true"}
        )
        time_default = await kantata.ok(
            "GET", "/time_entries", params={"workspace_id": ARCHIVED_WORKSPACE_ID}
        )
        time_archived = await kantata.ok(
            "GET",
            "/time_entries",
            params={"workspace_id": ARCHIVED_WORKSPACE_ID, "from_archived_workspaces": "true"},
        )
    assert ARCHIVED_WORKSPACE_ID not in ids(default)
    assert ARCHIVED_WORKSPACE_ID in ids(everything)
    assert all(not workspace["archived"] for workspace in records(default))
    # Kantata's show answers 404 for an archived workspace unless asked (mavenlink_gem's Workspace loads
    # its associations with include_archived: true for that reason).
    assert assert_errors(hidden, 404, "system")
    assert shown["workspaces"][ARCHIVED_WORKSPACE_ID]["archived"] is True
    assert time_default["count"] == 0
    assert time_archived["count"] > 0


# ---------------------------------------------------------------------------------------------------------
# Writing: creates, duplicates, look-before-create, updates, validation
# ---------------------------------------------------------------------------------------------------------


async def test_create_answers_200_with_the_envelope_and_a_repeat_duplicates() -> None:
    async with account() as kantata:
        first = await kantata.ok("POST", "/workspaces", json=NEW_WORKSPACE)
        second = await kantata.ok("POST", "/workspaces.json", json=NEW_WORKSPACE)
        found = await kantata.ok("GET", "/workspaces", params={"search": "Data Platform Phase 3"})
    assert first["count"] == 1
    assert first["results"] == [{"key": "workspaces", "id": ids(first)[0]}]
    created = records(first)[0]
    assert created["title"] == NEW_WORKSPACE["workspace"]["title"]
    assert created["creator_id"] == ADMIN_USER_ID
    assert created["archived"] is False
    assert created["created_at"] == created["updated_at"]
    assert int(created["id"]) > int(BIG_WORKSPACE_ID)
    # No idempotency: the retried create made a second project.
    assert ids(second) != ids(first)
    assert sorted(ids(found)) == sorted(ids(first) + ids(second))


async def test_bulk_create_under_the_plural_key() -> None:
    entry = {"workspace_id": DEMO_WORKSPACE_ID, "date_performed": "2026-03-02", "time_in_minutes": 90}
    async with account() as kantata:
        body = await kantata.ok(
            "POST",
            "/time_entries",
            json={"time_entries": [entry, {**entry, "user_id": DEMO_USER_ID, "billable": False}]},
        )
    created = records(body)
    assert body["count"] == 2
    assert [e["user_id"] for e in created] == [ADMIN_USER_ID, DEMO_USER_ID]
    assert [e["billable"] for e in created] == [True, False]
    assert all(e["approved"] is False and e["workspace_id"] == DEMO_WORKSPACE_ID for e in created)
    assert created[1]["rate_in_cents"] > 0  # the consultant's standard rate in the workspace currency


async def test_staffing_demand_is_a_workspace_resource_without_a_user() -> None:
    async with account() as kantata:
        role = records(await kantata.ok("GET", "/roles", params={"search": "data engineer"}))[0]
        demand = {"workspace_id": DEMO_WORKSPACE_ID, "role_id": role["id"], "allocated_minutes": 120 * 60}
        created = records(
            await kantata.ok("POST", "/workspace_resources.json", json={"workspace_resource": demand})
        )[0]
        listed = await kantata.ok("GET", "/workspace_resources", params={"workspace_id": DEMO_WORKSPACE_ID})
        staffed = await kantata.ok(
            "PUT",
            f"/workspace_resources/{created['id']}",
            json={"workspace_resource": {"user_id": DEMO_USER_ID}},
        )
    assert (created["user_id"], created["role_name"], created["title"]) == (
        None,
        "Data Engineer",
        "Data Engineer",
    )
    workspace = SEED["workspaces"][DEMO_WORKSPACE_ID]
    assert (created["start_date"], created["end_date"]) == (workspace["start_date"], workspace["due_date"])
    assert created["id"] in ids(listed)
    assert records(staffed)[0]["user_id"] == DEMO_USER_ID


async def test_look_before_create_through_external_references() -> None:
    opportunity = "006Dn00000LookUpAAA"
    reference = {
        "service_name": "Salesforce",
        "service_model": "Opportunity",
        "service_model_ref": opportunity,
    }
    lookup = {"subject_type": "Workspace", "service_model_ref": opportunity, "include": "workspace"}
    async with account() as kantata:
        before = await kantata.ok("GET", "/external_references", params=lookup)
        created = await kantata.ok(
            "POST",
            "/workspaces",
            json={"workspace": {**NEW_WORKSPACE["workspace"], "external_references_attributes": [reference]}},
        )
        after = await kantata.ok("GET", "/external_references", params=lookup)
        workspace_id = ids(created)[0]
        story = await kantata.ok(
            "POST", "/stories", json={"story": {"workspace_id": workspace_id, "title": "Discovery"}}
        )
        story_reference = await kantata.ok(
            "POST",
            "/external_references",
            json={
                "external_reference": {
                    **reference,
                    "service_model": "OpportunityLineItem",
                    "subject_type": "Story",
                    "subject_id": ids(story)[0],
                }
            },
        )
        seeded = await kantata.ok(
            "GET",
            "/external_references",
            params={"service_model_ref": DEMO_OPPORTUNITY_ID, "include": "workspace"},
        )
    assert before["count"] == 0
    assert after["count"] == 1
    found = records(after)[0]
    assert {key: found[key] for key in reference} == reference
    assert (found["subject_type"], found["subject_id"]) == ("Workspace", workspace_id)
    assert set(after["workspaces"]) == {workspace_id}
    assert records(story_reference)[0]["subject_id"] == ids(story)[0]
    assert [r["subject_id"] for r in records(seeded)] == [DEMO_WORKSPACE_ID]
    assert set(seeded["workspaces"]) == {DEMO_WORKSPACE_ID}


async def test_workspace_create_needs_creator_role_and_takes_price_per_mavenlink_gem_spec() -> None:
    """mavenlink_gem's lib/config/specification.yml (workspaces): `creator_role` is validated for inclusion in
    maven, buyer on create, and `price` (not `price_in_cents`) is the create and update attribute."""
    body = {**NEW_WORKSPACE["workspace"], "budgeted": True, "price": "125000.50"}
    async with account() as kantata:
        del_role = {key: value for key, value in body.items() if key != "creator_role"}
        without_role = await kantata.api("POST", "/workspaces", json={"workspace": del_role})
        as_maven = records(await kantata.ok("POST", "/workspaces", json={"workspace": body}))[0]
        buyer = {**body, "creator_role": "buyer"}
        as_buyer = await kantata.ok("POST", "/workspaces", json={"workspace": buyer})
        repriced = await kantata.ok("PUT", f"/workspaces/{as_maven['id']}", json={"workspace": {"price": 99}})
        role_later = await kantata.api(
            "PUT", f"/workspaces/{as_maven['id']}", json={"workspace": {"creator_role": "buyer"}}
        )
    assert [e["field"] for e in assert_errors(without_role, 422, "validation")] == ["creator_role"]
    assert as_maven["price_in_cents"] == 12500050
    assert "creator_role" not in as_maven
    assert "price" not in as_maven
    assert as_buyer["count"] == 1
    assert records(repriced)[0]["price_in_cents"] == 9900
    assert [e["field"] for e in assert_errors(role_later, 422, "validation")] == ["creator_role"]


async def test_archived_filter_only_exclude_include_per_kantata_workspace_docs() -> None:
    """Kantata's workspace list takes `archived=only|exclude|include`; a show of an archived workspace is
    404 unless `include_archived=true` (mavenlink_gem's Workspace reads with include_archived: true)."""
    async with account() as kantata:

        def listed(archived: str | None) -> dict[str, Any]:
            return {"per_page": 200} | ({} if archived is None else {"archived": archived})

        everything = ids(await kantata.ok("GET", "/workspaces", params=listed("include")))
        only = await kantata.ok("GET", "/workspaces", params=listed("only"))
        exclude = ids(await kantata.ok("GET", "/workspaces", params=listed("exclude")))
        default = ids(await kantata.ok("GET", "/workspaces", params=listed(None)))
        bad = await kantata.api("GET", "/workspaces", params={"archived": "maybe"})
        only_archived = {"archived": "only"}
        shown = await kantata.api("GET", f"/workspaces/{ARCHIVED_WORKSPACE_ID}", params=only_archived)
        live_hidden = await kantata.api("GET", f"/workspaces/{DEMO_WORKSPACE_ID}", params=only_archived)
    assert ids(only)
    assert all(workspace["archived"] for workspace in records(only))
    assert ARCHIVED_WORKSPACE_ID in ids(only)
    assert exclude == default
    assert sorted(everything, key=int) == sorted([*ids(only), *exclude], key=int)
    assert [e["field"] for e in assert_errors(bad, 422, "validation")] == ["archived"]
    assert shown.status_code == 200
    assert_errors(live_hidden, 404, "system")


async def test_form_encoded_workspace_create_is_accepted_as_rails_does() -> None:
    """Kantata is a Rails API: `workspace[title]=...` form bodies are accepted beside JSON."""
    form = {
        "workspace[title]": "Form Co - Rollout",
        "workspace[creator_role]": "maven",
        "workspace[currency]": "EUR",
        "workspace[budgeted]": "true",
        "workspace[price]": "1500.25",
        "workspace[external_references_attributes][][service_name]": "Salesforce",
        "workspace[external_references_attributes][][service_model]": "Opportunity",
        "workspace[external_references_attributes][][service_model_ref]": "006Dn00000FormAAA",
    }
    async with account() as kantata:
        created = records(await kantata.ok("POST", "/workspaces", data=form))[0]
        path = f"/workspaces/{created['id']}"
        renamed = await kantata.ok("PUT", path, data={"workspace[title]": "Renamed"})
        lookup = {"service_model_ref": "006Dn00000FormAAA"}
        refs = await kantata.ok("GET", "/external_references", params=lookup)
        form_type = {"content-type": "application/x-www-form-urlencoded"}
        clashing = b"workspace=b&workspace[title]=a"
        broken = await kantata.api("POST", "/workspaces", content=clashing, headers=form_type)
    assert (created["title"], created["currency"], created["budgeted"]) == ("Form Co - Rollout", "EUR", True)
    assert created["price_in_cents"] == 150025
    assert records(renamed)[0]["title"] == "Renamed"
    assert [r["subject_id"] for r in records(refs)] == [created["id"]]
    assert assert_errors(broken, 400, "system")  # a form a Rails app cannot read either, never a 500


async def test_users_me_is_the_tokens_user() -> None:
    """Kantata's `GET /users/me` answers the user the token belongs to."""
    async with account() as kantata:
        me = await kantata.ok("GET", "/users/me")
    assert ids(me) == [ADMIN_USER_ID]


async def test_workspaces_cannot_be_deleted_per_mavenlink_gem() -> None:
    """mavenlink_gem's Mavenlink::Workspace includes Concerns::Indestructible: Kantata has no workspace
    delete (a project is archived instead), so DELETE changes nothing."""
    async with account() as kantata:
        deleted = await kantata.api("DELETE", f"/workspaces/{DEMO_WORKSPACE_ID}")
        still = await kantata.ok("GET", f"/workspaces/{DEMO_WORKSPACE_ID}")
    assert assert_errors(deleted, 405, "system")
    assert ids(still) == [DEMO_WORKSPACE_ID]


async def test_updates_use_put_and_archiving_is_an_update() -> None:
    async with account() as kantata:
        created = records(await kantata.ok("POST", "/workspaces", json=NEW_WORKSPACE))[0]
        kantata.freeze(T0)
        renamed = await kantata.ok(
            "PUT",
            f"/workspaces/{created['id']}.json",
            json={"workspace": {"title": "Renamed", "status_key": 310, "due_date": "2026-09-30"}},
        )
        archived = await kantata.ok(
            "PUT", f"/workspaces/{created['id']}", json={"workspace": {"archived": True}}
        )
        listed = await kantata.ok("GET", "/workspaces", params={"search": "Renamed"})
        shown = await kantata.ok("GET", f"/workspaces/{created['id']}", params={"include_archived": "true"})
        currency = await kantata.api(
            "PUT", f"/workspaces/{created['id']}", json={"workspace": {"currency": "EUR"}}
        )
        unwrapped = await kantata.api("PUT", f"/workspaces/{created['id']}", json={"title": "Unwrapped"})
        not_an_object = await kantata.api("PUT", f"/workspaces/{created['id']}", json={"workspace": ["x"]})
    workspace = records(renamed)[0]
    assert workspace["id"] == created["id"]
    assert (workspace["title"], workspace["due_date"]) == ("Renamed", "2026-09-30")
    assert workspace["status"] == {"color": "green", "key": 310, "message": "Active"}
    assert "status_key" not in workspace
    assert workspace["created_at"] == created["created_at"]
    assert workspace["updated_at"] == T0_STAMP
    assert records(archived)[0]["archived"] is True
    assert listed["count"] == 0
    assert shown["workspaces"][created["id"]]["title"] == "Renamed"
    assert assert_errors(currency, 422, "validation")[0]["field"] == "currency"
    assert assert_errors(unwrapped, 422, "validation")[0]["field"] == "workspace"
    assert assert_errors(not_an_object, 422, "validation")[0]["field"] == "workspace"


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/workspaces", {"workspace": {**MAVEN, "description": "no title"}}, ["title"]),
        ("/workspaces", {"workspace": {**MAVEN, "title": "   "}}, ["title"]),
        ("/workspaces", {"workspace": {**MAVEN, "title": "x" * 256}}, ["title"]),
        ("/workspaces", {"workspace": {**MAVEN, "title": "x", "currency": "JPY"}}, ["currency"]),
        ("/workspaces", {"workspace": {**MAVEN, "title": "x", "budgeted": "yes"}}, ["budgeted"]),
        ("/workspaces", {"workspace": {**MAVEN, "title": "x", "price": -1}}, ["price"]),
        ("/workspaces", {"workspace": {**MAVEN, "title": "x", "start_date": "31/03/2026"}}, ["start_date"]),
        (
            "/workspaces",
            {"workspace": {**MAVEN, "title": "x", "start_date": "2026-04-01", "due_date": "2026-03-01"}},
            ["due_date"],
        ),
        ("/workspaces", {"workspace": {**MAVEN, "title": "x", "status_key": 999}}, ["status_key"]),
        ("/workspaces", {"workspace": {**MAVEN, "title": "x", "colour": "red", "id": "1"}}, ["colour", "id"]),
        ("/workspaces", {"title": "x"}, ["workspace"]),
        # mavenlink_gem's lib/config/specification.yml (workspaces): creator_role is required on create and
        # one of maven, buyer; the budget is written as `price`, and price_in_cents is not writable.
        ("/workspaces", {"workspace": {"title": "x"}}, ["creator_role"]),
        ("/workspaces", {"workspace": {"title": "x", "creator_role": "client"}}, ["creator_role"]),
        ("/workspaces", {"workspace": {**MAVEN, "title": "x", "price_in_cents": 100}}, ["price_in_cents"]),
        ("/workspaces", {"workspace": {**MAVEN, "title": "x", "price": "12.345"}}, ["price"]),
        ("/workspaces", {"workspace": {**MAVEN, "title": "x", "price": "lots"}}, ["price"]),
        (
            "/workspaces",
            {"workspace": {**MAVEN, "title": "x", "external_references_attributes": [{"service_name": "S"}]}},
            ["external_references.service_model", "external_references.service_model_ref"],
        ),
        (
            "/time_entries",
            {"time_entry": {"workspace_id": DEMO_WORKSPACE_ID}},
            ["date_performed", "time_in_minutes"],
        ),
        (
            "/time_entries",
            {
                "time_entry": {
                    "workspace_id": DEMO_WORKSPACE_ID,
                    "date_performed": "2026-03-02",
                    "time_in_minutes": 0,
                }
            },
            ["time_in_minutes"],
        ),
        (
            "/time_entries",
            {
                "time_entry": {
                    "workspace_id": "31899999",
                    "date_performed": "2026-03-02",
                    "time_in_minutes": 60,
                }
            },
            ["workspace_id"],
        ),
        (
            "/time_entries",
            {
                "time_entry": {
                    "workspace_id": DEMO_WORKSPACE_ID,
                    "date_performed": "2026-03-02",
                    "time_in_minutes": 60,
                    "approved": True,
                }
            },
            ["approved"],
        ),
        (
            "/stories",
            {"story": {"workspace_id": DEMO_WORKSPACE_ID, "title": "x", "story_type": "epic"}},
            ["story_type"],
        ),
        (
            "/expenses",
            {"expense": {"workspace_id": DEMO_WORKSPACE_ID, "date": "2026-03-02"}},
            ["category", "amount_in_cents"],
        ),
        (
            "/participations",
            {"participation": {"workspace_id": DEMO_WORKSPACE_ID, "user_id": DEMO_USER_ID}},
            ["user_id"],
        ),
        (
            "/workspace_resources",
            {"workspace_resource": {"workspace_id": DEMO_WORKSPACE_ID, "role_id": "1"}},
            ["role_id"],
        ),
        (
            "/external_references",
            {
                "external_reference": {
                    "subject_type": "Workspace",
                    "subject_id": "31899999",
                    "service_name": "Salesforce",
                    "service_model": "Opportunity",
                    "service_model_ref": "006x",
                }
            },
            ["subject_id"],
        ),
    ],
)
async def test_validation_errors(path: str, body: dict[str, Any], fields: list[str]) -> None:
    collection = path.strip("/")
    async with account() as kantata:
        before = (await kantata.ok("GET", path, params={"include_archived": "true"}))["count"]
        events_before = len(kantata.sandbox.records["subscribed_events"])
        response = await kantata.api("POST", path, json=body)
        after = (await kantata.ok("GET", path, params={"include_archived": "true"}))["count"]
        events_after = len(kantata.sandbox.records["subscribed_events"])
    errors = assert_errors(response, 422, "validation")
    assert [error["field"] for error in errors] == fields
    assert (after, events_after) == (before, events_before), f"a rejected {collection} body changed nothing"


async def test_a_bulk_create_is_all_or_nothing() -> None:
    good = {"workspace_id": DEMO_WORKSPACE_ID, "date_performed": "2026-03-02", "time_in_minutes": 60}
    async with account() as kantata:
        count = (await kantata.ok("GET", "/time_entries"))["count"]
        response = await kantata.api(
            "POST", "/time_entries", json={"time_entries": [good, {**good, "time_in_minutes": "an hour"}]}
        )
        after = (await kantata.ok("GET", "/time_entries"))["count"]
    assert [error["field"] for error in assert_errors(response, 422, "validation")] == ["time_in_minutes"]
    assert after == count


async def test_a_story_must_belong_to_the_time_entry_workspace_and_approved_time_is_locked() -> None:
    async with account() as kantata:
        other_story = ids(await kantata.ok("GET", "/stories", params={"workspace_id": EUR_WORKSPACE_ID}))[0]
        wrong_story = await kantata.api(
            "POST",
            "/time_entries",
            json={
                "time_entry": {
                    "workspace_id": DEMO_WORKSPACE_ID,
                    "story_id": other_story,
                    "date_performed": "2026-03-02",
                    "time_in_minutes": 60,
                }
            },
        )
        approved = records(
            await kantata.ok(
                "GET", "/time_entries", params={"workspace_id": DEMO_WORKSPACE_ID, "approved": "true"}
            )
        )[0]
        edit = await kantata.api(
            "PUT", f"/time_entries/{approved['id']}", json={"time_entry": {"notes": "x"}}
        )
    assert [error["field"] for error in assert_errors(wrong_story, 422, "validation")] == ["story_id"]
    assert [error["field"] for error in assert_errors(edit, 422, "validation")] == ["approved"]


async def test_a_body_that_is_not_json() -> None:
    async with account() as kantata:
        response = await kantata.api(
            "POST", "/workspaces", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert_errors(response, 400, "system")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/workspaces/31899999"),
        ("GET", f"/time_entries/{DEMO_WORKSPACE_ID}"),  # a workspace id is no time entry's id
        ("GET", "/workspaces/not-a-number.json"),
        ("PUT", "/workspaces/31899999"),
        ("GET", "/timesheets"),
        ("POST", "/roles"),  # read only; invoices are writable (Kantata "Creating a new Invoice")
        ("GET", f"/workspaces/{DEMO_WORKSPACE_ID}/stories"),
    ],
)
async def test_unknown_ids_and_routes_are_404(method: str, path: str) -> None:
    async with account() as kantata:
        response = await kantata.api(method, path, json=NEW_WORKSPACE if method != "GET" else None)
    assert len(assert_errors(response, 404, "system")) == 1


async def test_wrong_methods_answer_with_kantata_errors() -> None:
    async with account() as kantata:
        response = await kantata.api("DELETE", "/workspaces")
    assert_errors(response, 405, "system")
    assert "GET" in response.headers["allow"]


# ---------------------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------------------


def assert_documented_delivery(delivered: list[str], created_at: dict[str, str]) -> None:
    """The feed's promise: by second; newest id first within one; every 7th event again after the next."""
    serial = {i: int(i) - ID_START["subscribed_events"] + 1 for i in created_at}
    counts = Counter(delivered)
    for event_id, count in counts.items():
        assert count == (2 if serial[event_id] % DUPLICATE_EVERY == 0 else 1), event_id
    first_seen = list(dict.fromkeys(delivered))
    for earlier, later in itertools.pairwise(first_seen):
        assert created_at[earlier] <= created_at[later]
        if created_at[earlier] == created_at[later]:
            assert int(earlier) > int(later)
    # Each repeated event comes again right after the next event delivered in its own right.
    expected: list[str] = []
    pending: str | None = None
    for event_id in first_seen:
        expected.append(event_id)
        if pending is not None:
            expected.append(pending)
        pending = event_id if counts[event_id] == 2 else None
    if pending is not None:
        expected.append(pending)
    assert delivered == expected


async def test_seeded_events_arrive_duplicated_and_out_of_id_order_as_documented() -> None:
    async with account() as kantata:
        pages = await kantata.all_pages("/subscribed_events", {"per_page": 200})
    delivered = [i for page in pages for i in ids(page)]
    created_at = {i: e["created_at"] for page in pages for i, e in page["subscribed_events"].items()}
    assert len(pages) >= 2
    assert pages[0]["count"] == len(delivered)
    assert_documented_delivery(delivered, created_at)
    assert delivered != sorted(delivered, key=int)
    assert len(delivered) > len(set(delivered))
    types = {e["event_type"] for page in pages for e in page["subscribed_events"].values()}
    assert {"time_entry:created", "time_entry:updated"} <= types
    # A timesheet approval is one batch: many events in the very same second.
    assert max(Counter(created_at.values()).values()) > 20


async def test_writes_record_events_that_can_be_pulled_by_type_and_time() -> None:
    entry = {"workspace_id": GBP_WORKSPACE_ID, "date_performed": "2026-03-02", "time_in_minutes": 60}
    async with account() as kantata:
        kantata.freeze(T0)
        created = await kantata.ok("POST", "/time_entries", json={"time_entries": [entry] * 3})
        first = ids(created)[0]
        kantata.freeze(T0 + 5)
        await kantata.ok("PUT", f"/time_entries/{first}", json={"time_entry": {"notes": "Client workshop"}})
        await kantata.ok("POST", "/workspaces", json=NEW_WORKSPACE)
        approval = await kantata.client.post(
            "/__sandbox/time_entries/approve", json={"time_entry_ids": [ids(created)[1]]}
        )
        wanted = "time_entry:created,time_entry:updated"
        feed = await kantata.ok(
            "GET",
            "/subscribed_events",
            params={"created_after": "2033-05-18T03:33:19Z", "event_types": wanted},
        )
        later = await kantata.ok("GET", "/subscribed_events", params={"created_after": T0_STAMP})
        approved = await kantata.ok("GET", "/time_entries", params={"only": ids(created)[1]})
    assert approval.status_code == 200
    assert approval.json() == {"approved": [ids(created)[1]]}
    events = feed["subscribed_events"]
    delivered = ids(feed)
    assert_documented_delivery(delivered, {i: e["created_at"] for i, e in events.items()})
    first_seen = list(dict.fromkeys(delivered))
    kinds = [(events[i]["event_type"], events[i]["subject_id"]) for i in first_seen]
    # The three creates share a second, so they come newest first; the updates come after.
    assert kinds[:3] == [("time_entry:created", i) for i in reversed(ids(created))]
    assert sorted(kinds[3:]) == sorted(
        [("time_entry:updated", first), ("time_entry:updated", ids(created)[1])]
    )
    assert events[first_seen[0]]["created_at"] == T0_STAMP
    assert events[first_seen[0]]["subject_type"] == "TimeEntry"
    assert events[first_seen[0]]["payload"]["time_in_minutes"] == 60
    # created_after is exclusive: the creates at exactly that second are not "after" it.
    later_types = {e["event_type"] for e in later["subscribed_events"].values()}
    assert later_types == {"time_entry:updated", "workspace:created"}
    assert records(approved)[0]["approved"] is True


# ---------------------------------------------------------------------------------------------------------
# Mounting, admin and faults
# ---------------------------------------------------------------------------------------------------------


def mount(prefix: str, app: Any) -> Any:
    """What the gateway does: strip the prefix from the path and record it in root_path."""

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        assert path.startswith(prefix)
        scope = {
            **scope,
            "root_path": scope.get("root_path", "") + prefix,
            "path": path[len(prefix) :] or "/",
        }
        await app(scope, receive, send)

    return mounted


async def test_mounted_under_a_root_path() -> None:
    app = create_kantata_sandbox(KantataSandboxSettings(requests_per_second=1000))
    app.state.faults.add(FaultRule(kind="error", status=502, path_pattern="^/api/v1/invoices", times=1))
    transport = httpx.ASGITransport(app=mount("/sandboxes/kantata", app))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway.test/sandboxes/kantata", headers=headers
    ) as client:
        workspaces = await client.get(f"{API}/workspaces.json", params={"only": DEMO_WORKSPACE_ID})
        show = await client.get(f"{API}/workspaces/{DEMO_WORKSPACE_ID}.json")
        faulted = await client.get(f"{API}/invoices")
        invoices = await client.get(f"{API}/invoices")
        stats = await client.get("/__sandbox/stats")
        unauthenticated = await client.get(f"{API}/workspaces", headers={"Authorization": ""})
    assert ids(workspaces.json()) == [DEMO_WORKSPACE_ID]
    assert show.json()["results"] == [{"key": "workspaces", "id": DEMO_WORKSPACE_ID}]
    assert faulted.status_code == 502
    assert invoices.status_code == 200
    assert [entry["path"] for entry in stats.json()["requests"]] == [
        f"{API}/workspaces.json",
        f"{API}/workspaces/{DEMO_WORKSPACE_ID}.json",
        f"{API}/invoices",
        f"{API}/invoices",
    ]
    assert unauthenticated.status_code == 401


async def test_faults_apply_to_vendor_paths_and_reset_clears_them() -> None:
    async with account() as kantata:
        rule = {
            "kind": "error",
            "path_pattern": "/time_entries",
            "status": 503,
            "body": '{"errors":[{"type":"system","message":"Service Unavailable"}]}',
            "content_type": JSON_UTF8,
            "times": 1,
        }
        assert (await kantata.client.post("/__sandbox/faults", json=rule)).status_code == 201
        faulted = await kantata.api("GET", "/time_entries.json")
        recovered = await kantata.api("GET", "/time_entries.json")
        kantata.sandbox.faults.add(FaultRule(kind="malformed", path_pattern="/workspaces", times=1))
        malformed = await kantata.api("GET", "/workspaces")
        outage = {"kind": "outage", "method": "POST", "path_pattern": "/workspaces", "status": 503}
        assert (await kantata.client.post("/__sandbox/faults", json=outage)).status_code == 201
        down = await kantata.api("POST", "/workspaces", json=NEW_WORKSPACE)
        assert (await kantata.client.post("/__sandbox/reset")).status_code == 204
        remaining = (await kantata.client.get("/__sandbox/faults")).json()["faults"]
        after_reset = await kantata.api("GET", "/workspaces")
        stats = (await kantata.client.get("/__sandbox/stats")).json()
    assert_errors(faulted, 503, "system")
    assert recovered.status_code == 200
    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.content)
    assert down.status_code == 503
    assert down.headers["content-type"].startswith("text/html")
    assert remaining == []
    assert after_reset.status_code == 200
    assert stats["requests"] == [{"method": "GET", "path": f"{API}/workspaces", "status": 200}]


async def test_reset_restores_the_seed() -> None:
    async with account() as kantata:
        before = await kantata.ok("GET", f"/workspaces/{DEMO_WORKSPACE_ID}")
        await kantata.ok("PUT", f"/workspaces/{DEMO_WORKSPACE_ID}", json={"workspace": {"title": "Changed"}})
        created = await kantata.ok("POST", "/workspaces", json=NEW_WORKSPACE)
        assert (await kantata.client.post("/__sandbox/reset")).status_code == 204
        after = await kantata.ok("GET", f"/workspaces/{DEMO_WORKSPACE_ID}")
        gone = await kantata.api("GET", f"/workspaces/{ids(created)[0]}")
        again = await kantata.ok("POST", "/workspaces", json=NEW_WORKSPACE)
    assert after == before
    assert gone.status_code == 404
    assert ids(again) == ids(created)  # ids restart with the seed, so a replayed test sees the same ones


# ---------------------------------------------------------------------------------------------------------
# Seed data
# ---------------------------------------------------------------------------------------------------------

SEED = build_seed(42)


def test_seeded_workspaces_link_to_activated_salesforce_deals_only() -> None:
    opportunities = build_salesforce_seed(42)["Opportunity"]
    links = salesforce_links(42)
    references = [r for r in SEED["external_references"].values() if r["subject_type"] == "Workspace"]
    assert len(references) == len(links) >= 20
    for reference in references:
        assert (reference["service_name"], reference["service_model"]) == ("Salesforce", "Opportunity")
        assert links[reference["subject_id"]] == reference["service_model_ref"]
        opportunity = opportunities[reference["service_model_ref"]]
        assert opportunity["StageName"] == "Closed Won"
        assert SEED["workspaces"][reference["subject_id"]]["currency"] == opportunity["CurrencyIsoCode"]
    linked = {reference["service_model_ref"] for reference in references}
    assert len(linked) == len(references)
    # The activation workflow's test cases stay un-activated.
    assert not linked & SALESFORCE_WELL_KNOWN_OPPORTUNITY_IDS
    assert not linked & set(READY_OPPORTUNITY_IDS)
    assert links[DEMO_WORKSPACE_ID] == DEMO_OPPORTUNITY_ID
    for unlinked in (INTERNAL_WORKSPACE_ID, EUR_WORKSPACE_ID, GBP_WORKSPACE_ID, PLANNED_WORKSPACE_ID):
        assert unlinked not in links


def test_seed_shape() -> None:
    workspaces, entries = SEED["workspaces"], SEED["time_entries"]
    assert 25 <= len(workspaces) <= 35
    assert {w["currency"] for w in workspaces.values()} == {"USD", "GBP", "EUR"}
    for collection, records_by_id in SEED.items():
        assert all(key == record["id"] and key.isdigit() for key, record in records_by_id.items()), collection
    milestones = Counter(
        s["workspace_id"] for s in SEED["stories"].values() if s["story_type"] == "milestone"
    )
    assert set(milestones) == set(workspaces)
    assert all(2 <= count <= 5 for count in milestones.values())
    per_workspace = Counter(entry["workspace_id"] for entry in entries.values())
    assert per_workspace[BIG_WORKSPACE_ID] == BIG_WORKSPACE_TIME_ENTRY_COUNT
    assert per_workspace[DEMO_WORKSPACE_ID] == DEMO_WORKSPACE_TIME_ENTRY_COUNT
    assert per_workspace[PLANNED_WORKSPACE_ID] == 0
    assert len(entries) >= 500
    dates = {date.fromisoformat(entry["date_performed"]) for entry in entries.values()}
    assert min(dates) >= SEED_DATE - timedelta(days=92)
    assert max(dates) < SEED_DATE
    assert {(entry["approved"], entry["billable"]) for entry in entries.values()} == {
        (True, True),
        (True, False),
        (False, True),
        (False, False),
    }
    assert not any(
        entries[i]["billable"] for i in entries if entries[i]["workspace_id"] == INTERNAL_WORKSPACE_ID
    )
    resources = SEED["workspace_resources"].values()
    assert any(r["user_id"] is None for r in resources)
    assert any(r["user_id"] is not None for r in resources)
    assert SEED["expenses"]
    assert {i["status"] for i in SEED["invoices"].values()} >= {"new", "accepted payment"}
    assert any(i["draft"] for i in SEED["invoices"].values())
    for entry in entries.values():
        assert entry["currency"] == workspaces[entry["workspace_id"]]["currency"]
        story = SEED["stories"][entry["story_id"]]
        assert story["workspace_id"] == entry["workspace_id"]


def test_seed_is_deterministic() -> None:
    assert build_seed(42) == SEED
    other = build_seed(7)
    assert other != SEED
    assert DEMO_WORKSPACE_ID in other["workspaces"]
    assert sum(e["workspace_id"] == BIG_WORKSPACE_ID for e in other["time_entries"].values()) == 260
