"""Counting a rate-limit quota out in a test, clear of a window's edge."""

from __future__ import annotations

import asyncio
import time


async def clear_of_a_window_edge(window_seconds: int = 60, margin_seconds: float = 3.0) -> None:
    """Wait, if need be, until the clock is at least ``margin_seconds`` from the end of its window.

    The limiter's windows are aligned to the clock, and the sliding window counts the previous one as
    floor(its count x the share of it still inside) (apis/ratelimit.py, as the `limits` library does): just
    after an edge, the previous window's 2 hits count as floor(1.99) = 1. A test that counts a quota out to
    its last request and crosses an edge on the way sees one more allowed (a CI run met it)."""
    left = window_seconds - time.time() % window_seconds
    if left < margin_seconds:
        await asyncio.sleep(left + 0.05)
