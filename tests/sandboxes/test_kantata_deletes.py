"""DELETE in the Kantata sandbox, where Kantata's API docs (developer.kantata.com/kantata/specification)
have it: "Deleting an existing Time Entry", "Delete multiple time entries", "Delete multiple expenses",
"Deleting an existing Story" (a soft delete), "Deleting an existing Participation"; workspaces have none
(mavenlink_gem's Mavenlink::Workspace is Indestructible)."""

from __future__ import annotations

from typing import Any

from sandboxes.kantata.data import DEMO_WORKSPACE_ID, build_seed
from tests.sandboxes.test_kantata_sandbox import account, assert_errors, ids, records


def _seed_ids(collection: str, **equal: Any) -> list[str]:
    """Ids of the demo seed's records of ``collection`` whose fields equal ``equal``, in id order."""
    rows = build_seed(42)[collection].values()
    return sorted(
        (row["id"] for row in rows if all(row.get(name) == value for name, value in equal.items())), key=int
    )


def _open_time(count: int) -> list[str]:
    return _seed_ids("time_entries", workspace_id=DEMO_WORKSPACE_ID, is_invoiced=False)[:count]


async def test_a_time_entry_is_deleted_with_204_and_no_content() -> None:
    (entry,) = _open_time(1)
    async with account() as kantata:
        deleted = await kantata.api("DELETE", f"/time_entries/{entry}")
        shown = await kantata.api("GET", f"/time_entries/{entry}")
        listed = await kantata.ok("GET", "/time_entries", params={"only": entry})
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert_errors(shown, 404, "system")
    assert ids(listed) == []


async def test_an_invoiced_time_entry_cannot_be_deleted() -> None:
    """The docs: a time entry cannot be destroyed once invoiced."""
    invoiced = _seed_ids("time_entries", is_invoiced=True)[0]
    async with account() as kantata:
        refused = await kantata.api("DELETE", f"/time_entries/{invoiced}")
        still = await kantata.ok(
            "GET", f"/time_entries/{invoiced}", params={"from_archived_workspaces": "true"}
        )
    (error,) = assert_errors(refused, 422, "validation")
    assert invoiced in error["message"]
    assert ids(still) == [invoiced]


async def test_time_entries_are_deleted_in_bulk_all_or_none() -> None:
    """ "If any specified time entries cannot be deleted, the entire request will fail"; ``ids`` may come in
    the query or in the body."""
    first, second, third = _open_time(3)
    invoiced = _seed_ids("time_entries", is_invoiced=True)[0]
    async with account() as kantata:
        refused = await kantata.api("DELETE", "/time_entries", params={"ids": f"{first},{second},{invoiced}"})
        kept = await kantata.ok("GET", "/time_entries", params={"only": f"{first},{second}"})
        by_query = await kantata.ok("DELETE", "/time_entries", params={"ids": f"{second},{first}"})
        by_body = await kantata.ok("DELETE", "/time_entries", json={"ids": third})
        left = await kantata.ok("GET", "/time_entries", params={"only": f"{first},{second},{third}"})
    assert_errors(refused, 422, "validation")
    assert ids(kept) == [first, second]
    assert by_query == {"deleted": [first, second]}
    assert by_body == {"deleted": [third]}
    assert ids(left) == []


async def test_a_bulk_delete_names_at_most_100_known_ids() -> None:
    (entry,) = _open_time(1)
    async with account() as kantata:
        many = ",".join(str(number) for number in range(1, 102))
        too_many = await kantata.api("DELETE", "/time_entries", params={"ids": many})
        unknown = await kantata.api("DELETE", "/time_entries", params={"ids": f"{entry},999"})
        missing = await kantata.api("DELETE", "/time_entries")
        kept = await kantata.ok("GET", f"/time_entries/{entry}")
    assert [error["field"] for error in assert_errors(too_many, 422, "validation")] == ["ids"]
    assert "999" in assert_errors(unknown, 404, "system")[0]["message"]
    assert [error["field"] for error in assert_errors(missing, 422, "validation")] == ["ids"]
    assert ids(kept) == [entry]


async def test_expenses_are_deleted_only_in_bulk() -> None:
    """Kantata documents "Delete multiple expenses" and no single-expense delete."""
    first, second = _seed_ids("expenses", workspace_id=DEMO_WORKSPACE_ID)[:2]
    async with account() as kantata:
        single = await kantata.api("DELETE", f"/expenses/{first}")
        bulk = await kantata.ok("DELETE", "/expenses", params={"ids": f"{first},{second}"})
        left = await kantata.ok("GET", "/expenses", params={"only": f"{first},{second}"})
    assert_errors(single, 405, "system")
    assert single.headers["allow"] == "GET, PUT, PATCH"
    assert bulk == {"deleted": [first, second]}
    assert ids(left) == []


async def test_a_deleted_story_is_soft_deleted_and_listed_with_only_deleted() -> None:
    """The docs: deleting a story sets ``deleted_at``; ``only_deleted=true`` lists deleted ones.
    mavenlink_gem's Story reads with ``show_deleted: true`` to see both."""
    deleted_id, other_id = _seed_ids("stories", workspace_id=DEMO_WORKSPACE_ID)[:2]
    both = f"{deleted_id},{other_id}"
    async with account() as kantata:
        deleted = await kantata.api("DELETE", f"/stories/{deleted_id}")
        again = await kantata.api("DELETE", f"/stories/{deleted_id}")
        shown = await kantata.api("GET", f"/stories/{deleted_id}")
        listed = await kantata.ok("GET", "/stories", params={"only": both})
        only_deleted = await kantata.ok("GET", "/stories", params={"only": both, "only_deleted": "true"})
        show_deleted = await kantata.ok("GET", "/stories", params={"only": both, "show_deleted": "true"})
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert_errors(again, 404, "system")
    assert_errors(shown, 404, "system")
    assert ids(listed) == [other_id]
    assert ids(only_deleted) == [deleted_id]
    assert records(only_deleted)[0]["deleted_at"]
    assert ids(show_deleted) == [deleted_id, other_id]


async def test_a_participation_is_deleted() -> None:
    participation = _seed_ids("participations", workspace_id=DEMO_WORKSPACE_ID)[0]
    async with account() as kantata:
        deleted = await kantata.api("DELETE", f"/participations/{participation}")
        listed = await kantata.ok("GET", "/participations", params={"workspace_id": DEMO_WORKSPACE_ID})
    assert deleted.status_code == 204
    assert participation not in ids(listed)


async def test_workspaces_have_no_delete_in_bulk_either() -> None:
    async with account() as kantata:
        response = await kantata.api("DELETE", "/workspaces", params={"ids": DEMO_WORKSPACE_ID})
        still = await kantata.ok("GET", f"/workspaces/{DEMO_WORKSPACE_ID}")
    assert_errors(response, 405, "system")
    assert response.headers["allow"] == "GET, POST"
    assert ids(still) == [DEMO_WORKSPACE_ID]


async def test_the_event_feed_is_list_only() -> None:
    async with account() as kantata:
        feed = await kantata.ok("GET", "/subscribed_events", params={"per_page": 1})
        shown = await kantata.api("GET", f"/subscribed_events/{ids(feed)[0]}")
    assert_errors(shown, 404, "system")
