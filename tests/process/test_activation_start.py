"""Starting activations and customer syncs: what is refused before any run exists, and that concurrent
starts of one run tell exactly one caller it was started."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from apis.config import Settings
from sandboxes.salesforce.data import (
    CLOSED_LOST_OPPORTUNITY_ID,
    DEMO_ACCOUNT_ID,
    MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
    OPEN_OPPORTUNITY_ID,
    READY_RETAINER_OPPORTUNITY_ID,
    salesforce_id,
)
from tests.process.test_activation_runs import ACTIVATIONS, WORKFLOWS, _settings, _until, _workspaces

UNKNOWN_OPPORTUNITY_ID = salesforce_id("006", 999_999)
PG_ADMIN = os.environ.get("STRATUM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(_settings(make_settings))


def _headers(gw: Any, scopes: str = "process:run") -> dict[str, str]:
    return {**gw.auth(scopes), "Idempotency-Key": uuid.uuid4().hex}


async def _runs(gw: Any) -> list[dict[str, Any]]:
    response = await gw.client.get("/process/v1/runs", headers=gw.auth("process:read"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- refused up front (item 7) -----------------------------------------------------------------------------


async def test_an_opportunity_the_crm_does_not_know_is_404_and_makes_no_run(gw: Any) -> None:
    response = await gw.client.post(
        ACTIVATIONS, json={"opportunity_id": UNKNOWN_OPPORTUNITY_ID}, headers=_headers(gw)
    )
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not-found"
    assert await _runs(gw) == []


@pytest.mark.parametrize(
    ("opportunity_id", "stage"),
    [(OPEN_OPPORTUNITY_ID, "negotiation"), (CLOSED_LOST_OPPORTUNITY_ID, "closed_lost")],
)
async def test_an_opportunity_not_won_is_422_naming_its_stage_and_makes_no_run(
    gw: Any, opportunity_id: str, stage: str
) -> None:
    body = {"opportunity_id": opportunity_id}
    response = await gw.client.post(ACTIVATIONS, json=body, headers=_headers(gw))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "opportunity-not-won"
    assert problem["type"] == "/problems/opportunity-not-won"
    assert stage in problem["detail"]
    assert problem["errors"][0]["field"] == "opportunity_id"
    assert await _runs(gw) == []
    # No run was made under the deal's run id either.
    run = await gw.client.get(f"{ACTIVATIONS}/pa-{opportunity_id}", headers=gw.auth("process:read"))
    assert run.status_code == 404


async def test_a_won_deal_a_person_must_fix_still_parks_with_its_owner(gw: Any) -> None:
    response = await gw.client.post(
        ACTIVATIONS,
        json={"opportunity_id": MISSING_LEGAL_ENTITY_OPPORTUNITY_ID},
        headers={**_headers(gw), "Prefer": "wait=30"},
    )
    assert response.status_code == 202, response.text
    run = await _until(gw, response.json()["id"], "exception")
    assert run["issue"]["owner"] == "sales_operations"


# --- concurrent starts (item 24) ---------------------------------------------------------------------------


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A throwaway database on the shared PostgreSQL (skipped when none answers)."""
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2) as conn:
            name = f"stratum_start_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def gw_on_postgres(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings], postgres_database: str
) -> Any:
    return await make_gateway(make_settings(workflows={**WORKFLOWS, "database_url": postgres_database}))


async def test_concurrent_starts_of_one_activation_start_it_once(gw: Any) -> None:
    await _ten_concurrent_starts_start_one_run(gw)


async def test_concurrent_starts_start_one_run_on_postgresql_too(gw_on_postgres: Any) -> None:
    await _ten_concurrent_starts_start_one_run(gw_on_postgres)


async def _ten_concurrent_starts_start_one_run(gw: Any) -> None:
    async def start() -> Any:
        return await gw.client.post(
            ACTIVATIONS, json={"opportunity_id": READY_RETAINER_OPPORTUNITY_ID}, headers=_headers(gw)
        )

    responses = await asyncio.gather(*(start() for _ in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 9 + [202], [r.text for r in responses]
    run_ids = {r.json()["id"] for r in responses}
    assert run_ids == {f"pa-{READY_RETAINER_OPPORTUNITY_ID}"}

    await _until(gw, run_ids.pop(), "completed")
    runs = [r for r in await _runs(gw) if r["subject"] == READY_RETAINER_OPPORTUNITY_ID]
    assert len(runs) == 1
    assert len(_workspaces(gw, READY_RETAINER_OPPORTUNITY_ID)) == 1


async def test_concurrent_starts_of_one_customer_sync_start_it_once(gw: Any) -> None:
    # The route derives the run id from the client and its Idempotency-Key; the gateway's idempotency layer
    # answers a key still in flight with 409, so starts race only once that record is gone (expired) while
    # the run lives on. The start the route makes is called directly here, ten times at once.
    from process_apis.runs import start_customer_sync

    run_id = f"cs-test-{uuid.uuid4().hex[:12]}"
    outcomes = await asyncio.gather(
        *(start_customer_sync([DEMO_ACCOUNT_ID], run_id=run_id, trigger="api") for _ in range(10))
    )
    assert sorted(started for _, started in outcomes) == [False] * 9 + [True]
    assert {run.id for run, _ in outcomes} == {run_id}


def test_workers_starting_together_on_a_fresh_database_all_start(postgres_database: str) -> None:
    # Found by the billing end-to-end tests: two workers creating the fleet's table at once on a fresh
    # database made PostgreSQL fail one of them (a duplicate key in its catalog), and that worker died.
    import threading

    import sqlalchemy as sa

    from process_apis.engine import create_fleet_tables

    url = postgres_database.replace("postgresql://", "postgresql+psycopg://", 1)
    engines = [sa.create_engine(url, poolclass=sa.NullPool) for _ in range(6)]
    barrier = threading.Barrier(len(engines))
    failures: list[BaseException] = []

    def start(engine: sa.Engine) -> None:
        barrier.wait()
        try:
            create_fleet_tables(engine)
        except BaseException as exc:  # every failure is the finding
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for engine in engines:
        engine.dispose()
    assert failures == []


# --- what a start reads ------------------------------------------------------------------------------------


async def test_a_start_here_reads_the_run_database_only_for_what_it_does_not_know(
    gw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads of the run that told nothing new are gone: the start looking again for a run the route had just
    found absent (~2 ms of an activation one at a time), and the waiter's status read repeated after the
    one that said the run was done (it reads the steps only). The run still reads back who started it:
    of two starts at once, only the run database knows whose won. Counted by who asked, from the stack
    where the read is asked for."""
    import traceback

    from dbos import DBOS

    reads: list[tuple[str, set[str]]] = []

    def counted(kind: str, read: Any) -> Any:
        # Not async: the stack is taken where the read is asked for, before a task runs it.
        def call(*args: Any, **kwargs: Any) -> Any:
            reads.append((kind, {frame.name for frame in traceback.extract_stack()}))
            return read(*args, **kwargs)

        return call

    monkeypatch.setattr(DBOS, "get_workflow_status_async", counted("status", DBOS.get_workflow_status_async))
    monkeypatch.setattr(DBOS, "list_workflow_steps_async", counted("steps", DBOS.list_workflow_steps_async))

    response = await gw.client.post(
        ACTIVATIONS,
        json={"opportunity_id": READY_RETAINER_OPPORTUNITY_ID},
        headers={**_headers(gw), "Prefer": "wait=30"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "completed"

    def asked_by(name: str, kind: str = "status") -> int:
        return sum(1 for k, stack in reads if k == kind and name in stack)

    assert asked_by("find_activation") == 1
    assert asked_by("start_activation") == 1  # the run it has just started, to answer with
    assert asked_by("_know_starter") == 1
    assert asked_by("_wait_for", "steps") == 1
    assert sum(1 for kind, _ in reads if kind == "steps") == 1
