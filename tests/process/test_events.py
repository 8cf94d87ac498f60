"""Business events as a consumer and a re-run workflow step see them: CloudEvents on a stream, each id once,
read forward with a cursor over ``GET /process/v1/events``."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from apis.context import correlation_id_var
from apis.state import MemoryStateStore, RedisStateStore, StateStore
from contracts.models.events import (
    CUSTOMER_SYNCED,
    PROJECT_ACTIVATED,
    RUN_PARKED,
    CloudEvent,
    CustomerSynced,
    ProjectActivated,
    RunParked,
    event_id,
)
from process_apis.events import EventPublisher
from system_apis.crm.port import InvalidCursor

ACTIVATED_AT = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        memory = MemoryStateStore()
        yield memory
        await memory.close()
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix = f"test-events-{uuid.uuid4().hex[:12]}:"
    redis = RedisStateStore(redis_url, prefix=prefix)
    yield redis
    keys = [key async for key in redis._redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis._redis.delete(*keys)
    await redis.close()


@pytest.fixture
def publisher(store: StateStore) -> EventPublisher:
    return EventPublisher(store)


def _activated(run_id: str) -> ProjectActivated:
    return ProjectActivated(
        run_id=run_id,
        opportunity_id="006A",
        crm_customer_id="001A",
        erp_customer_id="C-1",
        psa_project_id="W-1",
        erp_project_id="P-1",
        billing_schedule_id=None,
        closed_won_on=dt.date(2026, 11, 19),
        activated_at=ACTIVATED_AT,
    )


async def _publish_synced(publisher: EventPublisher, run_id: str) -> CloudEvent:
    data = CustomerSynced(run_id=run_id, crm_customer_id="001A", erp_customer_id="C-1")
    return await publisher.publish(
        event_id=event_id(run_id, "sync_customer"), type=CUSTOMER_SYNCED, subject="001A", data=data
    )


def test_event_ids_are_deterministic_per_run_and_step() -> None:
    assert event_id("run-1", "activate") == event_id("run-1", "activate")
    assert uuid.UUID(event_id("run-1", "activate")).version == 5
    assert event_id("run-1", "activate") != event_id("run-2", "activate")
    assert event_id("run-1", "activate") != event_id("run-1", "sync_customer")
    assert event_id("a:b", "c") != event_id("a", "b:c")
    with pytest.raises(ValueError, match="at least one part"):
        event_id()


async def test_a_published_event_is_a_cloudevent_with_its_payload(publisher: EventPublisher) -> None:
    token = correlation_id_var.set("corr-123")
    try:
        event = await publisher.publish(
            event_id=event_id("run-1", "activate"),
            type=PROJECT_ACTIVATED,
            subject="006A",
            data=_activated("run-1"),
            time=ACTIVATED_AT,
        )
    finally:
        correlation_id_var.reset(token)
    page = await publisher.read(cursor=None, limit=10, types=None)
    assert page.items == [event]
    wire = msgspec.json.decode(msgspec.json.encode(event))
    assert wire == {
        "specversion": "1.0",
        "id": event_id("run-1", "activate"),
        "source": "/process/v1",
        "type": "project.activated",
        "subject": "006A",
        "time": "2026-11-20T09:30:00Z",
        "datacontenttype": "application/json",
        "dataschema": None,
        "correlationid": "corr-123",
        "data": {
            "run_id": "run-1",
            "opportunity_id": "006A",
            "crm_customer_id": "001A",
            "erp_customer_id": "C-1",
            "psa_project_id": "W-1",
            "erp_project_id": "P-1",
            "billing_schedule_id": None,
            "closed_won_on": "2026-11-19",
            "activated_at": "2026-11-20T09:30:00Z",
        },
    }
    assert msgspec.convert(event.data, ProjectActivated) == _activated("run-1")


async def test_a_rerun_step_publishes_the_same_event_once(publisher: EventPublisher) -> None:
    with capture_logs() as logs:
        first = await _publish_synced(publisher, "run-7")
        rerun = await _publish_synced(publisher, "run-7")
    assert rerun.id == first.id
    page = await publisher.read(cursor=None, limit=10, types=None)
    assert [e.id for e in page.items] == [first.id]
    assert [line["event"] for line in logs if line["event"].startswith("event_")] == [
        "event_published",
        "event_duplicate",
    ]


async def test_event_time_must_carry_its_offset(publisher: EventPublisher) -> None:
    with pytest.raises(ValueError, match="timezone"):
        await publisher.publish(
            event_id="x", type=RUN_PARKED, subject="s", data={}, time=dt.datetime(2026, 1, 1, 9, 0)
        )
    assert (await publisher.read(cursor=None, limit=10, types=None)).items == []


async def test_paging_reads_every_event_once_and_the_last_cursor_polls_for_new_ones(
    publisher: EventPublisher,
) -> None:
    empty = await publisher.read(cursor=None, limit=2, types=None)
    assert empty.items == []
    assert empty.next_cursor is None
    ids = [(await _publish_synced(publisher, f"run-{i}")).id for i in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        page = await publisher.read(cursor=cursor, limit=2, types=None)
        seen += [e.id for e in page.items]
        cursor = page.next_cursor
    assert seen == ids
    idle = await publisher.read(cursor=cursor, limit=2, types=None)
    assert idle.items == []
    assert idle.next_cursor == cursor
    newer = await _publish_synced(publisher, "run-5")
    assert [e.id for e in (await publisher.read(cursor=cursor, limit=2, types=None)).items] == [newer.id]


async def test_a_type_filter_pages_over_other_events_and_ends(publisher: EventPublisher) -> None:
    wanted = []
    for i in range(7):
        await _publish_synced(publisher, f"run-{i}")
        if i % 3 == 0:
            parked = RunParked(
                run_id=f"run-{i}",
                workflow="activate_project",
                state="exception",
                owner="finance",
                step="create_billing_schedule",
                reason="no billing model",
            )
            event = await publisher.publish(
                event_id=event_id(f"run-{i}", "park"), type=RUN_PARKED, subject=f"run-{i}", data=parked
            )
            wanted.append(event.id)
    for _ in range(5):
        await _publish_synced(publisher, f"tail-{_}")
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await publisher.read(cursor=cursor, limit=1, types={RUN_PARKED})
        if not page.items:
            break
        assert [e.type for e in page.items] == [RUN_PARKED]
        seen += [e.id for e in page.items]
        cursor = page.next_cursor
    assert seen == wanted
    # The last page moved past the unwanted tail, so the next poll starts after it.
    assert page.next_cursor is not None
    assert page.next_cursor != cursor
    assert (await publisher.read(cursor=page.next_cursor, limit=100, types=None)).items == []


async def test_a_filter_with_no_match_still_advances_the_cursor(publisher: EventPublisher) -> None:
    for i in range(3):
        await _publish_synced(publisher, f"run-{i}")
    page = await publisher.read(cursor=None, limit=10, types={PROJECT_ACTIVATED})
    assert page.items == []
    assert page.next_cursor is not None
    assert (await publisher.read(cursor=page.next_cursor, limit=10, types=None)).items == []


@pytest.mark.parametrize(
    "cursor", ["", "not a cursor", "bm9wZQ", base64.urlsafe_b64encode(b"1-2-3").decode()]
)
async def test_a_cursor_this_api_did_not_issue_is_refused(publisher: EventPublisher, cursor: str) -> None:
    await _publish_synced(publisher, "run-1")
    with pytest.raises(InvalidCursor):
        await publisher.read(cursor=cursor, limit=10, types=None)


# Over HTTP, through the whole gateway (in-process state store).


async def test_a_consumer_pages_through_events_over_http(gw: Any) -> None:
    publisher = EventPublisher(gw.runtime.store)
    ids = [(await _publish_synced(publisher, f"run-{i}")).id for i in range(3)]
    parked = await publisher.publish(
        event_id=event_id("run-9", "park"),
        type=RUN_PARKED,
        subject="run-9",
        data={
            "run_id": "run-9",
            "workflow": "w",
            "state": "dead_letter",
            "owner": None,
            "step": "s",
            "reason": "r",
        },
    )
    headers = gw.auth("process:read")
    first = await gw.client.get("/process/v1/events", params={"limit": 2}, headers=headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert [e["id"] for e in body["items"]] == ids[:2]
    assert body["items"][0]["specversion"] == "1.0"
    assert body["items"][0]["type"] == "customer.synced"
    rest = await gw.client.get(
        "/process/v1/events", params={"limit": 100, "cursor": body["next_cursor"]}, headers=headers
    )
    assert [e["id"] for e in rest.json()["items"]] == [ids[2], parked.id]
    only_parked = await gw.client.get(
        "/process/v1/events", params={"type": "run.parked,project.activated"}, headers=headers
    )
    assert [e["id"] for e in only_parked.json()["items"]] == [parked.id]
    idle = await gw.client.get(
        "/process/v1/events", params={"cursor": rest.json()["next_cursor"]}, headers=headers
    )
    assert idle.json() == {"items": [], "next_cursor": rest.json()["next_cursor"]}


async def test_a_consumer_behind_events_already_removed_gets_410_not_a_silent_gap(gw: Any) -> None:
    publisher = EventPublisher(gw.runtime.store)
    await _publish_synced(publisher, "run-1")
    await _publish_synced(publisher, "run-2")
    headers = gw.auth("process:read")
    read = await gw.client.get("/process/v1/events", params={"limit": 1}, headers=headers)
    cursor = read.json()["next_cursor"]
    await asyncio.sleep(0.005)
    # A publisher keeping only the last millisecond removes run-2's event before the consumer read it.
    await _publish_synced(EventPublisher(gw.runtime.store, retention_seconds=0.001), "run-3")
    behind = await gw.client.get("/process/v1/events", params={"cursor": cursor}, headers=headers)
    assert behind.status_code == 410, behind.text
    assert behind.headers["content-type"].startswith("application/problem+json")
    assert behind.json()["code"] == "cursor-expired"
    # Starting again without a cursor reads from the oldest event kept.
    again = await gw.client.get("/process/v1/events", headers=headers)
    assert [e["data"]["run_id"] for e in again.json()["items"]] == ["run-3"]


@pytest.mark.parametrize("cursor", ["bm9wZQ", "%%%", "x" * 600])
async def test_a_bad_cursor_is_a_422_problem(gw: Any, cursor: str) -> None:
    response = await gw.client.get(
        "/process/v1/events", params={"cursor": cursor}, headers=gw.auth("process:read")
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation-failed"
    assert any(e["field"] == "cursor" for e in problem["errors"])


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"type": "run parked"}, {"type": ","}])
async def test_bad_paging_or_filter_parameters_are_a_422(gw: Any, params: dict[str, Any]) -> None:
    response = await gw.client.get("/process/v1/events", params=params, headers=gw.auth("process:read"))
    assert response.status_code == 422


async def test_reading_events_needs_the_process_read_scope(gw: Any) -> None:
    refused = await gw.client.get("/process/v1/events", headers=gw.auth("process:run system:read"))
    assert refused.status_code == 403
    assert "insufficient_scope" in refused.headers["www-authenticate"]
    assert (await gw.client.get("/process/v1/events")).status_code == 401
