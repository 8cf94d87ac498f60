"""Reads made at once whose first error wins, for a handler or adapter that needs several answers together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar, overload

__all__ = ["all_at_once", "at_once"]

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
T = TypeVar("T")


@overload
async def at_once(first: Awaitable[A], second: Awaitable[B], /) -> tuple[A, B]: ...


@overload
async def at_once(first: Awaitable[A], second: Awaitable[B], third: Awaitable[C], /) -> tuple[A, B, C]: ...


async def at_once(*calls: Awaitable[Any]) -> tuple[Any, ...]:
    """Every call's answer, the calls made at once. All are awaited, so none is left running unobserved;
    when any failed, the error of the first failed call in argument order is raised (e.g. a record's own
    404 over its children's listing's), whichever failed first in time."""
    return tuple(await _answers(calls))


async def all_at_once(calls: Iterable[Awaitable[T]]) -> list[T]:
    """``at_once`` for any number of calls of one kind (one per ERP, per chunk of ids): every answer, in
    the calls' order."""
    return await _answers(calls)


async def _answers(calls: Iterable[Awaitable[Any]]) -> list[Any]:
    answers = await asyncio.gather(*calls, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return answers
