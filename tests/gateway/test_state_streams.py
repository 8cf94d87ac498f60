"""The state store's streams, on both adapters: each entry id appended once, read forward from a position."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import pytest

from apis.state import MemoryStateStore, RedisStateStore, StateStore, StreamPositionExpired


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        memory = MemoryStateStore()
        yield memory
        await memory.close()
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix = f"test-streams-{uuid.uuid4().hex[:12]}:"
    redis = RedisStateStore(redis_url, prefix=prefix)
    yield redis
    keys = [key async for key in redis._redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis._redis.delete(*keys)
    await redis.close()


def _order(position: str) -> tuple[int, int]:
    ms, seq = position.split("-")
    return int(ms), int(seq)


async def test_entries_read_back_oldest_first_at_increasing_positions(store: StateStore) -> None:
    positions = [await store.append_to_stream("s", f"e{i}", f"payload {i}".encode()) for i in range(5)]
    assert all(p is not None and re.fullmatch(r"\d+-\d+", p) for p in positions)
    entries = await store.read_stream("s")
    assert [payload for _, payload in entries] == [f"payload {i}".encode() for i in range(5)]
    assert [position for position, _ in entries] == positions
    assert [_order(p) for p, _ in entries] == sorted({_order(p) for p, _ in entries})


async def test_the_same_entry_id_is_appended_once(store: StateStore) -> None:
    first = await store.append_to_stream("s", "run-1:notify", b"first")
    again = await store.append_to_stream("s", "run-1:notify", b"the re-run's copy")
    assert first is not None
    assert again is None
    assert await store.read_stream("s") == [(first, b"first")]


async def test_concurrent_appends_of_one_entry_id_store_one_entry(store: StateStore) -> None:
    results = await asyncio.gather(*(store.append_to_stream("s", "same", f"{i}".encode()) for i in range(20)))
    assert len([r for r in results if r is not None]) == 1
    assert len(await store.read_stream("s")) == 1


async def test_entry_ids_are_remembered_per_stream(store: StateStore) -> None:
    assert await store.append_to_stream("a", "id-1", b"x") is not None
    assert await store.append_to_stream("b", "id-1", b"x") is not None
    assert len(await store.read_stream("a")) == len(await store.read_stream("b")) == 1


async def test_an_entry_id_is_forgotten_after_its_dedupe_ttl(store: StateStore) -> None:
    assert await store.append_to_stream("s", "id-1", b"x", dedupe_ttl_seconds=0.05) is not None
    await asyncio.sleep(0.3)
    assert await store.append_to_stream("s", "id-1", b"x", dedupe_ttl_seconds=0.05) is not None
    assert len(await store.read_stream("s")) == 2


async def test_reading_after_a_position_excludes_it_and_honours_the_limit(store: StateStore) -> None:
    positions = [await store.append_to_stream("s", f"e{i}", f"{i}".encode()) for i in range(6)]
    page = await store.read_stream("s", after=positions[1], limit=3)
    assert [payload for _, payload in page] == [b"2", b"3", b"4"]
    rest = await store.read_stream("s", after=page[-1][0], limit=3)
    assert [payload for _, payload in rest] == [b"5"]
    assert positions[-1] is not None
    assert await store.read_stream("s", after=positions[-1]) == []
    # A position from before the stream began reads from the oldest entry.
    assert len(await store.read_stream("s", after="0-0")) == 6


async def test_an_unknown_stream_reads_empty(store: StateStore) -> None:
    assert await store.read_stream("never-written") == []
    assert await store.read_stream("never-written", after="5-5") == []


async def test_a_new_entry_follows_a_reader_that_reached_the_end(store: StateStore) -> None:
    last = await store.append_to_stream("s", "e1", b"1")
    assert last is not None
    assert await store.read_stream("s", after=last) == []
    await store.append_to_stream("s", "e2", b"2")
    assert [payload for _, payload in await store.read_stream("s", after=last)] == [b"2"]


async def test_entries_older_than_the_retention_are_trimmed_by_age_not_by_count(store: StateStore) -> None:
    for i in range(300):  # a burst: far more entries than a count cap would keep, all within retention
        await store.append_to_stream("s", f"e{i}", f"{i}".encode())
    assert len(await store.read_stream("s", limit=1000)) == 300
    await asyncio.sleep(0.005)
    # An append that keeps only the last millisecond trims everything older.
    await store.append_to_stream("s", "late", b"late", retention_seconds=0.001)
    assert [payload for _, payload in await store.read_stream("s", limit=1000)] == [b"late"]
    # A trimmed entry's id is still remembered: a late re-run does not bring it back.
    assert await store.append_to_stream("s", "e0", b"0") is None


async def test_a_reader_behind_what_was_trimmed_is_told_not_skipped(store: StateStore) -> None:
    first = await store.append_to_stream("s", "e1", b"1")
    second = await store.append_to_stream("s", "e2", b"2")
    assert first is not None
    assert second is not None
    await asyncio.sleep(0.005)
    await store.append_to_stream("s", "e3", b"3", retention_seconds=0.001)
    # After `first`, the entry `second` was trimmed unread: reading on would skip it without a word.
    with pytest.raises(StreamPositionExpired):
        await store.read_stream("s", after=first)
    # A reader that had passed everything trimmed reads on; one without a position starts at the oldest kept.
    assert [payload for _, payload in await store.read_stream("s", after=second)] == [b"3"]
    assert [payload for _, payload in await store.read_stream("s")] == [b"3"]


@pytest.mark.parametrize(
    "position", ["", "abc", "1", "1-", "-1", "1-2-3", " 1-2", "1-2\n", "18446744073709551616-0", "(1-2"]
)
async def test_a_position_that_is_not_a_stream_id_is_refused(store: StateStore, position: str) -> None:
    await store.append_to_stream("s", "e1", b"1")
    with pytest.raises(ValueError, match="not a stream position"):
        await store.read_stream("s", after=position)


async def test_nothing_follows_the_largest_position(store: StateStore) -> None:
    await store.append_to_stream("s", "e1", b"1")
    largest = f"{2**64 - 1}-{2**64 - 1}"
    assert await store.read_stream("s", after=largest) == []
