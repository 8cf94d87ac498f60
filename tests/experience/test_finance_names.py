"""The finance views' customer names: read in one tier call per hundred ids, the calls at once; a customer
absent from the answer keeps its id with no name."""

from __future__ import annotations

import asyncio

import pytest

from contracts.models import Customer
from experience_apis.finance import NAMES_AT_ONCE, _names_at_once


@pytest.mark.asyncio
async def test_names_are_one_call_per_hundred_ids_and_an_absent_customer_has_none() -> None:
    calls: list[list[str]] = []
    running = 0
    most = 0

    async def read(ids: list[str]) -> list[Customer]:
        nonlocal running, most
        calls.append(ids)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return [Customer(id=i, name=f"name {i}") for i in ids if i != "c-gone"]

    ids = [f"c-{n:03d}" for n in range(NAMES_AT_ONCE + 5)] + ["c-gone"]
    names = await _names_at_once(ids, read)
    assert [len(c) for c in calls] == [NAMES_AT_ONCE, 6]
    assert most == 2  # the calls at once, not one after another
    assert names["c-gone"] is None
    assert names["c-000"] == "name c-000"
    assert list(names) == ids
    assert await _names_at_once([], read) == {}
    assert len(calls) == 2  # no ids: no call
