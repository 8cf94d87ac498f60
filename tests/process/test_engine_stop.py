"""Stopping the workflow engine cancels the runs' tasks and waits for them a bounded time: a task that
catches its cancel to record its outcome on a run database that does not answer (DBOS retries a lost
connection until it is back) must not hang the stop. A full test run once hung 15 minutes in the teardown
of tests/process/test_run_database_outage.py that way."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import dbos._dbos as dbos_internals
import pytest
from structlog.testing import capture_logs

from process_apis import engine


async def test_a_task_that_outlives_its_cancel_does_not_hang_the_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    never = asyncio.Event()

    async def records_its_outcome_on_a_silent_database() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await never.wait()  # as a retry loop on a database that does not come back

    async def stops_when_cancelled() -> None:
        await asyncio.sleep(3600)

    stubborn = asyncio.create_task(records_its_outcome_on_a_silent_database(), name="run-stubborn")
    polite = asyncio.create_task(stops_when_cancelled(), name="run-polite")
    await asyncio.sleep(0)
    monkeypatch.setattr(
        dbos_internals, "_dbos_global_instance", SimpleNamespace(_workflow_tasks=[stubborn, polite])
    )
    monkeypatch.setattr(engine, "_CANCEL_GRACE_SECONDS", 0.2)

    started = time.monotonic()
    with capture_logs() as logs:
        await asyncio.wait_for(engine._cancel_workflow_tasks(), timeout=10)  # unbounded, it waited forever
    took = time.monotonic() - started

    assert took < 5, took
    assert polite.cancelled()
    assert not stubborn.done()
    left = [entry for entry in logs if entry["event"] == "workflow_tasks_left_running"]
    assert [(entry["count"], entry["tasks"]) for entry in left] == [(1, ["run-stubborn"])]
    never.set()
    await stubborn


async def test_tasks_that_stop_when_cancelled_are_all_awaited(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(3)]
    await asyncio.sleep(0)
    monkeypatch.setattr(dbos_internals, "_dbos_global_instance", SimpleNamespace(_workflow_tasks=tasks))

    with capture_logs() as logs:
        await engine._cancel_workflow_tasks()

    assert all(task.cancelled() for task in tasks)
    assert not [entry for entry in logs if entry["event"] == "workflow_tasks_left_running"]
