"""Reads made at once whose first error wins, for a handler or adapter that needs several answers together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar, overload

__all__ = ["at_once"]

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


@overload
async def at_once(first: Awaitable[A], second: Awaitable[B], /) -> tuple[A, B]: ...


@overload
async def at_once(first: Awaitable[A], second: Awaitable[B], third: Awaitable[C], /) -> tuple[A, B, C]: ...


async def at_once(*calls: Awaitable[Any]) -> tuple[Any, ...]:
    """Every call's answer, the calls made at once. All are awaited, so none is left running unobserved;
    when any failed, the error of the first failed call in argument order is raised (e.g. a record's own
    404 over its children's listing's), whichever failed first in time."""
    answers = await asyncio.gather(*calls, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return tuple(answers)
