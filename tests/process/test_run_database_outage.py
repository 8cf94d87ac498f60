"""The run database (PostgreSQL) goes away under a running gateway: requests that need it answer a 503
problem with Retry-After in seconds instead of hanging for the outage, readiness names it, and the first
request after it returns works.

The gateway reaches the shared PostgreSQL through a TCP proxy the test controls (never the server itself).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from structlog.testing import capture_logs

from apis.config import Settings
from process_apis.engine import WorkflowEngine
from sandboxes.salesforce.data import MISSING_LEGAL_ENTITY_OPPORTUNITY_ID, READY_OPPORTUNITY_ID
from tests.tcp_proxy import TcpProxy

PG_ADMIN = os.environ.get("STRATUM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _wait_for_abandoned_database_calls() -> None:
    """The calls the gateway stopped waiting for (it answered 503) go on in DBOS's threads, which retry a
    lost connection until the database is back. Let them finish through the proxy before the database is
    dropped, or they retry against a database that is gone, and the test process cannot exit."""
    for thread in threading.enumerate():
        if thread.name.startswith("dbos-executor-"):
            thread.join(timeout=60)


@pytest.fixture
def database(proxy: TcpProxy) -> Iterator[str]:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2, autocommit=True) as conn:
            name = f"stratum_outage_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        if os.environ.get("STRATUM_TEST_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL must answer on 127.0.0.1:5432 for the run database tests")
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    yield name
    _wait_for_abandoned_database_calls()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    host, port = psycopg.conninfo.conninfo_to_dict(PG_ADMIN).get("host", "127.0.0.1"), 5432
    proxy = TcpProxy(str(host), port)
    yield proxy
    proxy.close()


@pytest.fixture
def workflows() -> dict[str, Any]:
    return {}


@pytest.fixture
async def gw(
    proxy: TcpProxy,
    database: str,
    workflows: dict[str, Any],
    make_gateway: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
) -> Any:
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
    return await make_gateway(make_settings(workflows={"database_url": url, **workflows}))


# Not a speed check (that lives in bench/): a generous bound so a request that hangs for the whole outage,
# as it did before requests were bounded, fails the test instead of hanging it.
HANG = 30


async def _get(gw: Any, path: str, **headers: str) -> httpx.Response:
    response: httpx.Response = await asyncio.wait_for(gw.client.get(path, headers=headers), HANG)
    return response


async def _activate(gw: Any, key: str) -> httpx.Response:
    headers = {**gw.auth("process:run process:read"), "Idempotency-Key": key}
    response: httpx.Response = await asyncio.wait_for(
        gw.client.post(
            "/process/v1/project-activations", json={"opportunity_id": READY_OPPORTUNITY_ID}, headers=headers
        ),
        HANG,
    )
    return response


def _assert_run_database_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["code"] == "run-database-unavailable"


@pytest.mark.parametrize("how", ["refuse", "blackhole"])
async def test_an_unreachable_run_database_answers_503_and_readiness_names_it(
    gw: Any, proxy: TcpProxy, how: Any
) -> None:
    read = gw.auth("process:read")
    assert (await _get(gw, "/process/v1/runs", **read)).status_code == 200
    assert (await _get(gw, "/health/ready")).status_code == 200

    proxy.down(how)
    key = uuid.uuid4().hex
    _assert_run_database_unavailable(await _activate(gw, key))
    _assert_run_database_unavailable(await _get(gw, "/process/v1/runs", **read))
    _assert_run_database_unavailable(
        await _get(gw, f"/process/v1/project-activations/pa-{READY_OPPORTUNITY_ID}", **read)
    )
    readiness = await _get(gw, "/health/ready")
    assert readiness.status_code == 503
    assert readiness.json()["failed"] == ["run_database"]
    assert "retry-after" in readiness.headers

    proxy.up()
    # The retry with the same key starts the one run (or finds it, if the first start landed late).
    started = await _activate(gw, key)
    assert started.status_code in (200, 202), started.text
    assert started.json()["id"] == f"pa-{READY_OPPORTUNITY_ID}"
    assert (await _get(gw, "/health/ready")).status_code == 200


def _engine(gw: Any) -> WorkflowEngine:
    process = next(m.app for m in gw.gateway.mounts if m.prefix == "/process")
    engine: WorkflowEngine = process.state.workflow_engine
    return engine


# The test drives the heartbeat rounds itself: the background one beats once at start, then sleeps.
@pytest.mark.parametrize("workflows", [{"heartbeat_seconds": 3600, "worker_timeout_seconds": 1.0}])
async def test_a_worker_back_from_a_database_outage_takes_over_no_one_the_outage_silenced(
    gw: Any, proxy: TcpProxy, database: str
) -> None:
    # A run parked for a person stays PENDING, held by its worker: here another one, whose last beat is a
    # minute old, as it is for every worker when the database was unreachable for a minute.
    parked = await gw.client.post(
        "/process/v1/project-activations",
        json={"opportunity_id": MISSING_LEGAL_ENTITY_OPPORTUNITY_ID},
        headers={
            **gw.auth("process:run process:read"),
            "Idempotency-Key": uuid.uuid4().hex,
            "Prefer": "wait=30",
        },
    )
    assert parked.json()["state"] == "exception", parked.text
    run_id = parked.json()["id"]
    with psycopg.connect(PG_ADMIN.rsplit("/", 1)[0] + f"/{database}", autocommit=True) as conn:
        conn.execute(
            "UPDATE dbos.workflow_status SET executor_id = 'other-worker' WHERE workflow_uuid = %s", (run_id,)
        )
        conn.execute(
            "INSERT INTO stratum_workers (executor_id, host, pid, started_at, heartbeat_at) "
            "VALUES ('other-worker', 'elsewhere', 1, 0, extract(epoch from now()) - 60)"
        )
    engine = _engine(gw)

    with capture_logs() as logs:
        proxy.down("refuse")
        await engine._watch_once()  # this worker cannot beat either
        proxy.up()
        await engine._watch_once()  # back: it beats, and judges no one yet
    assert "worker_heartbeat_failed" in [e["event"] for e in logs]
    assert "worker_runs_taken_over" not in [e["event"] for e in logs]

    # Once it has beaten for a whole timeout and the other still has not, the other is dead.
    await asyncio.sleep(1.1)
    with capture_logs() as logs:
        await engine._watch_once()
    taken = [e for e in logs if e["event"] == "worker_runs_taken_over"]
    assert [(e["dead_executor_id"], e["runs"]) for e in taken] == [("other-worker", [run_id])]
