"""Gateway state: one port, an in-process adapter (the embedded default) and a Redis adapter.

What lives here is small and keyed: idempotency records, caches, and append-only streams (the business event
stream). Rate-limit counters go through the ``limits`` library's own storage for the same backend (see
``apis.ratelimit``).

A stream entry is appended under an entry id that is remembered for a while (``dedupe_ttl_seconds``): a writer
that is re-run after a crash (a workflow step) appends the same id again and adds nothing. Positions are
Redis stream ids (``"<ms>-<seq>"``), strictly increasing in both adapters, so a reader's cursor means the
same thing whichever adapter wrote the entries.

An outage is one exception, ``StateStoreUnavailable``, whatever the cause (refused, reset, timed out): each
caller decides what it means for its function (the README's "What a Redis outage means"), and the problem
handler answers it as a 503 ``state-store-unavailable`` with Retry-After.
"""

from __future__ import annotations

import asyncio
import bisect
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from apis.logging import get_logger

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = [
    "MemoryStateStore",
    "RedisStateStore",
    "StateStore",
    "StateStoreUnavailable",
    "StreamPositionExpired",
    "create_state_store",
    "needed_by",
    "redis_answering",
    "redis_client_options",
]

log = get_logger("stratum.state")

_POSITION = re.compile(r"(\d{1,20})-(\d{1,20})")
_MAX_ID_PART = 2**64 - 1


class StreamPositionExpired(Exception):
    """A read after a position older than entries already trimmed away: the reader would skip them
    unknowingly, so it is told instead."""


class StateStoreUnavailable(Exception):
    """The state store did not answer (refused, reset or timed out). Nothing is known about the command's
    effect, except for commands that are safe to repeat, which were already tried again."""

    # Long enough for a Redis restart or a failover; short enough that a client does not give up.
    retry_after_seconds = 2

    def __init__(self, operation: str, cause: BaseException | None = None) -> None:
        super().__init__(f"state store unavailable during {operation}: {cause!r}")
        self.operation = operation


@contextmanager
def needed_by(function: str) -> Iterator[None]:
    """Count an outage against the gateway function that met it (``stratum_state_store_unavailable_total``),
    and let it through to the caller's handling."""
    from apis.metrics import STATE_STORE_UNAVAILABLE

    try:
        yield
    except StateStoreUnavailable:
        STATE_STORE_UNAVAILABLE.labels(function).inc()
        raise


# Redis answers in well under a millisecond, so a second without an answer is an outage, not a slow
# command: an outage must answer the caller in about a second, not after the client's 5 s default times
# 10 retries. One retry with a fresh connection makes the first command after Redis returns succeed even
# on a pooled connection that died with the old server; the health check pings a connection idle for a
# while before it is used again.
REDIS_SOCKET_TIMEOUT_SECONDS = 0.5
REDIS_CONNECT_TIMEOUT_SECONDS = 0.5
REDIS_RETRIES = 1
REDIS_HEALTH_CHECK_SECONDS = 5


def redis_client_options() -> dict[str, Any]:
    """Connection options for every Redis client of the gateway (the state store and the rate limiter)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff

    return {
        "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
        "health_check_interval": REDIS_HEALTH_CHECK_SECONDS,
        # Retries connection errors and timeouts only. Every command the gateway sends is safe to send
        # twice: GET, SET, DEL, INCRBY-style counters (one request counted twice at worst), SET NX (a lost
        # reply reads as "taken", never as a second claim) and the append script (deduplicated by entry id).
        "retry": Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.02), REDIS_RETRIES),
    }


def _parse_position(position: str) -> tuple[int, int]:
    """``"<ms>-<seq>"`` as numbers; ``ValueError`` for anything Redis would not take as a stream id."""
    match = _POSITION.fullmatch(position)
    if match is None:
        raise ValueError(f"not a stream position: {position!r}")
    ms, seq = int(match[1]), int(match[2])
    if ms > _MAX_ID_PART or seq > _MAX_ID_PART:
        raise ValueError(f"not a stream position: {position!r}")
    return ms, seq


def _check_stream_args(retention_seconds: float, dedupe_ttl_seconds: float) -> None:
    if retention_seconds <= 0:
        raise ValueError("retention_seconds must be positive")
    if dedupe_ttl_seconds <= 0:
        raise ValueError("dedupe_ttl_seconds must be positive")


@runtime_checkable
class StateStore(Protocol):
    """Byte values under string keys, each with a time to live. Every method but ``ping`` and ``close``
    raises ``StateStoreUnavailable`` when the store does not answer."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    async def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        """Store only if ``key`` is absent (atomically); True when this call stored it."""
        ...

    async def delete(self, key: str) -> None: ...

    async def append_to_stream(
        self,
        stream: str,
        entry_id: str,
        payload: bytes,
        *,
        retention_seconds: float = 7 * 24 * 3600,
        dedupe_ttl_seconds: float = 7 * 24 * 3600,
    ) -> str | None:
        """Append payload unless entry_id was already appended (atomically); the new entry's position, or None
        for a duplicate.

        The dedupe record and the entry are written together, so no crash can leave one without the other.
        Entries are kept ``retention_seconds`` (by age, not by count: a burst of entries cannot push out
        ones a slow reader has not read yet); an entry id is remembered for ``dedupe_ttl_seconds``, even
        after its entry was trimmed away."""
        ...

    async def read_stream(
        self, stream: str, *, after: str | None = None, limit: int = 100
    ) -> list[tuple[str, bytes]]:
        """Entries strictly after position ``after`` (None: from the oldest kept), oldest first: (position,
        payload). ``ValueError`` when ``after`` is not a stream position; ``StreamPositionExpired`` when
        entries after it were already trimmed away (the reader would miss them without knowing)."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


# What the in-process store may hold (keys and values), before it drops the oldest written. Without a bound
# it holds every idempotency record for its whole 24 h (each with the answer it replays, about 2 KiB for a
# run), so memory grows with the write rate times a day: 5 GiB at 30 writes a second. 64 MiB keeps about
# 30,000 records (over 8 h at one write a second); a gateway with more writes than that should use Redis,
# which is also what several processes need (``STRATUM_STATE_MEMORY_MAX_MIB`` moves the bound).
MEMORY_STORE_MAX_BYTES = 64 * 1024 * 1024
# What a key costs besides its name and value: the dict slot, the (expiry, value) tuple, the float, and the
# str and bytes headers (measured with sys.getsizeof; an estimate is enough for a bound).
_ENTRY_OVERHEAD_BYTES = 200


class MemoryStateStore:
    """A dict with expiry. Correct for one process only: several workers need Redis.

    Bounded (``max_bytes``): past it, the oldest written keys are dropped (expired ones go anyway, every
    1,024 writes), much as a Redis with a ``maxmemory`` policy drops keys. A dropped idempotency record means
    a retry of that request runs again (the workflows' business keys and the vendors' external keys still
    stop a second record); ``stratum_state_store_evictions_total`` counts them, and one warning says to use
    Redis. Stream entries are bounded by their retention, not by this budget."""

    def __init__(self, *, max_bytes: int = MEMORY_STORE_MAX_BYTES) -> None:
        # Oldest written first (a key written again moves to the end), so eviction takes the front.
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self.max_bytes = max_bytes
        self._evicted = 0
        self._lock = asyncio.Lock()
        self._ops = 0
        # Per stream, oldest first: ((ms, seq), payload). Positions only grow, so the list stays sorted.
        self._streams: dict[str, list[tuple[tuple[int, int], bytes]]] = {}
        self._last_position: dict[str, tuple[int, int]] = {}
        # Per stream, the newest position trimmed away (as Redis 7's max-deleted-entry-id).
        self._trimmed: dict[str, tuple[int, int]] = {}

    @property
    def held_bytes(self) -> int:
        """What the keys and values take, as the bound counts it."""
        return self._bytes

    @staticmethod
    def _cost(key: str, value: bytes) -> int:
        return len(key) + len(value) + _ENTRY_OVERHEAD_BYTES

    def _put(self, key: str, expires: float, value: bytes) -> None:
        self._drop(key)
        self._data[key] = (expires, value)
        self._bytes += self._cost(key, value)
        if self._bytes > self.max_bytes:
            self._make_room(key)

    def _drop(self, key: str) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self._bytes -= self._cost(key, item[1])

    def _make_room(self, keep: str) -> None:
        # No sweep here: at the bound every write makes room, and a sweep reads every key.
        while self._bytes > self.max_bytes and len(self._data) > 1:
            oldest = next(iter(self._data))
            if oldest == keep:  # a single value larger than the bound stays, alone
                break
            self._drop(oldest)
            self._evicted += 1
            if self._evicted == 1:
                log.warning(
                    "state_store_full",
                    max_bytes=self.max_bytes,
                    hint="the in-process store drops its oldest keys (idempotency records first to go); "
                    "set STRATUM_REDIS_URL for this write rate",
                )
            from apis.metrics import STATE_STORE_EVICTIONS

            STATE_STORE_EVICTIONS.inc()

    def _live(self, key: str, now: float) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= now:
            self._drop(key)
            return None
        return item[1]

    def _sweep(self, now: float) -> None:
        # Amortised expiry so an idle key cannot keep memory forever.
        self._ops += 1
        if self._ops % 1024 == 0:
            self._sweep_all(now)

    def _sweep_all(self, now: float) -> None:
        for key in [k for k, (exp, _) in self._data.items() if exp <= now]:
            self._drop(key)

    async def get(self, key: str) -> bytes | None:
        return self._live(key, time.monotonic())

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        now = time.monotonic()
        self._sweep(now)
        self._put(key, now + ttl_seconds, value)

    async def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        async with self._lock:
            now = time.monotonic()
            if self._live(key, now) is not None:
                return False
            self._sweep(now)
            self._put(key, now + ttl_seconds, value)
            return True

    async def delete(self, key: str) -> None:
        self._drop(key)

    def _next_position(self, stream: str) -> tuple[int, int]:
        # Like Redis: wall-clock ms and a sequence within the ms; never backwards, even if the clock is.
        ms = time.time_ns() // 1_000_000
        last = self._last_position.get(stream)
        position = (ms, 0) if last is None or ms > last[0] else (last[0], last[1] + 1)
        self._last_position[stream] = position
        return position

    async def append_to_stream(
        self,
        stream: str,
        entry_id: str,
        payload: bytes,
        *,
        retention_seconds: float = 7 * 24 * 3600,
        dedupe_ttl_seconds: float = 7 * 24 * 3600,
    ) -> str | None:
        _check_stream_args(retention_seconds, dedupe_ttl_seconds)
        async with self._lock:
            now = time.monotonic()
            # The dedupe records live with the other keys (and the same names as in Redis), so they expire
            # the same way.
            dedupe_key = f"stream-ids:{stream}:{entry_id}"
            if self._live(dedupe_key, now) is not None:
                return None
            self._sweep(now)
            self._put(dedupe_key, now + dedupe_ttl_seconds, b"1")
            entries = self._streams.setdefault(stream, [])
            position = self._next_position(stream)
            entries.append((position, payload))
            horizon = (position[0] - int(retention_seconds * 1000), 0)
            old = bisect.bisect_left(entries, horizon, key=lambda entry: entry[0])
            if old:
                self._trimmed[stream] = max(self._trimmed.get(stream, (0, 0)), entries[old - 1][0])
                del entries[:old]
            return f"{position[0]}-{position[1]}"

    async def read_stream(
        self, stream: str, *, after: str | None = None, limit: int = 100
    ) -> list[tuple[str, bytes]]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        start = _parse_position(after) if after is not None else None
        if start is not None and start < self._trimmed.get(stream, (0, 0)):
            raise StreamPositionExpired(after)
        entries = self._streams.get(stream, [])
        first = 0 if start is None else bisect.bisect_right(entries, start, key=lambda entry: entry[0])
        return [(f"{ms}-{seq}", payload) for (ms, seq), payload in entries[first : first + limit]]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()
        self._bytes = 0
        self._streams.clear()
        self._last_position.clear()
        self._trimmed.clear()


# KEYS: the dedupe record, the stream, the stream's trim mark. ARGV: dedupe ttl (ms), retention (ms),
# payload. The dedupe record is written first and the entry only if it was new, in one script, so a crash
# cannot split them. Entries older than the retention (by Redis's clock, the one stream ids come from) are
# trimmed, and the trim mark keeps the newest id trimmed, which read_stream compares a reader's position
# with (Redis's own max-deleted-entry-id counts XDEL only, not trimming).
_APPEND_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return false
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[2])
if ms > 0 then
  local horizon = string.format('%d', ms)
  local newest_old = redis.call('XREVRANGE', KEYS[2], '(' .. horizon .. '-0', '-', 'COUNT', 1)
  if #newest_old > 0 then
    redis.call('XTRIM', KEYS[2], 'MINID', horizon)
    redis.call('SET', KEYS[3], newest_old[1][1])
  end
end
return redis.call('XADD', KEYS[2], '*', 'f', ARGV[3])
"""


class RedisStateStore:
    """Shared by every gateway process and host pointed at the same Redis."""

    def __init__(self, url: str, *, prefix: str = "stratum:") -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, **redis_client_options())
        self._prefix = prefix
        # Registered once: the client sends EVALSHA and loads the script again only if Redis lost it.
        self._append_once: AsyncScript = self._redis.register_script(_APPEND_ONCE)

    async def get(self, key: str) -> bytes | None:
        async with redis_answering("get"):
            value = await self._redis.get(self._prefix + key)
        # The client is built without decode_responses, so values come back as bytes.
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        async with redis_answering("set"):
            await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_seconds * 1000)))

    async def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        async with redis_answering("add"):
            stored = await self._redis.set(
                self._prefix + key, value, px=max(1, int(ttl_seconds * 1000)), nx=True
            )
        return bool(stored)

    async def delete(self, key: str) -> None:
        async with redis_answering("delete"):
            await self._redis.delete(self._prefix + key)

    async def append_to_stream(
        self,
        stream: str,
        entry_id: str,
        payload: bytes,
        *,
        retention_seconds: float = 7 * 24 * 3600,
        dedupe_ttl_seconds: float = 7 * 24 * 3600,
    ) -> str | None:
        _check_stream_args(retention_seconds, dedupe_ttl_seconds)
        async with redis_answering("append_to_stream"):
            position = await self._append_once(
                keys=[
                    f"{self._prefix}stream-ids:{stream}:{entry_id}",
                    f"{self._prefix}stream:{stream}",
                    f"{self._prefix}stream-trimmed:{stream}",
                ],
                args=[max(1, int(dedupe_ttl_seconds * 1000)), max(1, int(retention_seconds * 1000)), payload],
            )
        if position is None:
            return None
        return position.decode() if isinstance(position, bytes) else str(position)

    async def read_stream(
        self, stream: str, *, after: str | None = None, limit: int = 100
    ) -> list[tuple[str, bytes]]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        start = "-"
        if after is not None:
            ms, seq = _parse_position(after)
            if ms == seq == _MAX_ID_PART:
                return []  # nothing can follow the largest id (and Redis refuses "(" before it)
            start = f"({ms}-{seq}"
        async with redis_answering("read_stream"):
            # One round trip: the trim mark and the entries, as of the same moment.
            pipe = self._redis.pipeline(transaction=True)
            pipe.get(f"{self._prefix}stream-trimmed:{stream}")
            pipe.xrange(f"{self._prefix}stream:{stream}", start, "+", count=limit)
            trimmed, entries = await pipe.execute()
        newest_trimmed = _parse_position(_text(trimmed)) if trimmed is not None else None
        if after is not None and newest_trimmed is not None and _parse_position(after) < newest_trimmed:
            raise StreamPositionExpired(after)
        # Without decode_responses the client answers bytes; the stubs allow str and None as well.
        return [(_text(position), _bytes(fields[b"f"])) for position, fields in entries or () if fields]

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self._redis.aclose()

    async def persistence(self) -> list[str] | None:
        """How Redis keeps data across a restart: ``["aof"]``, ``["rdb"]``, both, or ``[]`` (a restart
        loses every idempotency record and event); None when Redis will not say (managed Redis services
        often refuse CONFIG)."""
        from redis.exceptions import ResponseError

        try:
            async with redis_answering("persistence"):
                config = await self._redis.config_get("appendonly")
                config.update(await self._redis.config_get("save"))
        except ResponseError:
            return None
        values = {_text(k): _text(v) for k, v in config.items()}
        modes = []
        if values.get("appendonly") == "yes":
            modes.append("aof")
        if values.get("save", "").strip():
            modes.append("rdb")
        return modes


@asynccontextmanager
async def redis_answering(operation: str) -> AsyncIterator[None]:
    """Every way Redis can fail to answer, as the one exception callers handle."""
    from redis import exceptions as redis_errors

    try:
        yield
    # ReadOnlyError: a replica that is not (yet) the primary after a failover. BusyLoadingError (Redis
    # reading its append-only file after a restart) is a ConnectionError.
    except (
        redis_errors.ConnectionError,
        redis_errors.TimeoutError,
        redis_errors.ReadOnlyError,
        OSError,
        TimeoutError,
    ) as exc:
        raise StateStoreUnavailable(operation, exc) from exc


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def create_state_store(
    redis_url: str | None, *, memory_max_bytes: int = MEMORY_STORE_MAX_BYTES
) -> StateStore:
    return RedisStateStore(redis_url) if redis_url else MemoryStateStore(max_bytes=memory_max_bytes)
