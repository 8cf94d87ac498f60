"""The gateway's in-process stores are bounded: sustained writes cannot grow them without limit (issue 13,
memory flat under sustained writes). Each test counts entries or bytes, never time."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from apis.config import load_settings
from apis.runtime import Runtime
from apis.state import MEMORY_STORE_MAX_BYTES, MemoryStateStore

DAY = 24 * 3600


def _evictions() -> float:
    return REGISTRY.get_sample_value("stratum_state_store_evictions_total") or 0.0


async def test_the_memory_state_store_stays_within_its_bound_dropping_the_oldest_written() -> None:
    store = MemoryStateStore(max_bytes=64 * 1024)
    record = b"x" * 2000  # an idempotency record with the answer it replays
    before = _evictions()
    with capture_logs() as logs:
        for n in range(1000):  # 2 MB of records kept for a day: 30 times the bound
            await store.set(f"idem:process:client:{n}", record, DAY)
            assert store.held_bytes <= store.max_bytes
    assert await store.get("idem:process:client:0") is None  # the oldest went first
    assert await store.get("idem:process:client:999") == record  # the newest are kept
    kept = [n for n in range(1000) if await store.get(f"idem:process:client:{n}") is not None]
    assert kept == list(range(kept[0], 1000))  # what is kept is the newest, without a gap
    assert len(kept) >= 25
    assert _evictions() - before == 1000 - len(kept)
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == ["state_store_full"]


async def test_a_key_written_again_counts_as_the_newest_and_once() -> None:
    store = MemoryStateStore(max_bytes=10 * 1024)
    await store.set("claim", b"in flight", 60)
    for n in range(30):
        await store.set(f"k{n}", b"v" * 100, DAY)
        await store.set("claim", b"in flight", 60)  # re-written: moves to the newest end
    assert await store.get("claim") == b"in flight"
    assert await store.add("claim", b"other", 60) is False
    held = store.held_bytes
    await store.set("claim", b"in flight", 60)
    assert store.held_bytes == held  # replaced, not counted twice
    await store.delete("claim")
    assert store.held_bytes == held - len("claim") - len(b"in flight") - 200


async def test_stream_dedupe_records_share_the_bound_and_the_stream_keeps_its_entries() -> None:
    store = MemoryStateStore(max_bytes=32 * 1024)
    for n in range(2000):
        assert await store.append_to_stream("events", f"entry-{n}", b"{}") is not None
        assert store.held_bytes <= store.max_bytes
    # The newest ids are still recognised (a re-run writer right after a crash adds nothing)...
    assert await store.append_to_stream("events", "entry-1999", b"{}") is None
    # ...and the entries themselves stay until their retention (a reader is told when it missed some).
    assert len(await store.read_stream("events", limit=5000)) == 2000


def test_the_bound_is_a_setting(tmp_path: Path) -> None:
    runtime = Runtime(load_settings({"STRATUM_STATE_MEMORY_MAX_MIB": "8"}, data_dir=str(tmp_path)))
    assert isinstance(runtime.store, MemoryStateStore)
    assert runtime.store.max_bytes == 8 * 1024 * 1024
    assert MemoryStateStore().max_bytes == MEMORY_STORE_MAX_BYTES == 64 * 1024 * 1024
