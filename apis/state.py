"""Gateway state: one port, an in-process adapter (the embedded default) and a Redis adapter.

What lives here is small and keyed: idempotency records, caches, later the business event stream. Rate-limit
counters go through the ``limits`` library's own storage for the same backend (see ``apis.ratelimit``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["MemoryStateStore", "RedisStateStore", "StateStore", "create_state_store"]


@runtime_checkable
class StateStore(Protocol):
    """Byte values under string keys, each with a time to live."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    async def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        """Store only if ``key`` is absent (atomically); True when this call stored it."""
        ...

    async def delete(self, key: str) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryStateStore:
    """A dict with expiry. Correct for one process only: several workers need Redis."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, bytes]] = {}
        self._lock = asyncio.Lock()
        self._ops = 0

    def _live(self, key: str, now: float) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._data[key]
            return None
        return item[1]

    def _sweep(self, now: float) -> None:
        # Amortised expiry so an idle key cannot keep memory forever.
        self._ops += 1
        if self._ops % 1024 == 0:
            for key in [k for k, (exp, _) in self._data.items() if exp <= now]:
                del self._data[key]

    async def get(self, key: str) -> bytes | None:
        return self._live(key, time.monotonic())

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        now = time.monotonic()
        self._sweep(now)
        self._data[key] = (now + ttl_seconds, value)

    async def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        async with self._lock:
            now = time.monotonic()
            if self._live(key, now) is not None:
                return False
            self._sweep(now)
            self._data[key] = (now + ttl_seconds, value)
            return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


class RedisStateStore:
    """Shared by every gateway process and host pointed at the same Redis."""

    def __init__(self, url: str, *, prefix: str = "stratum:") -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = prefix

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._prefix + key)
        # The client is built without decode_responses, so values come back as bytes.
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_seconds * 1000)))

    async def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        stored = await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_seconds * 1000)), nx=True)
        return bool(stored)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self._redis.aclose()


def create_state_store(redis_url: str | None) -> StateStore:
    return RedisStateStore(redis_url) if redis_url else MemoryStateStore()
