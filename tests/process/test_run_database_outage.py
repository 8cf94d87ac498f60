"""The run database (PostgreSQL) goes away under a running gateway: requests that need it answer a 503
problem with Retry-After in seconds instead of hanging for the outage, readiness names it, and the first
request after it returns works.

The gateway reaches the shared PostgreSQL through a TCP proxy the test controls (never the server itself).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from apis.config import Settings
from sandboxes.salesforce.data import READY_OPPORTUNITY_ID
from tests.tcp_proxy import TcpProxy

PG_ADMIN = os.environ.get("STRATUM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def database() -> Iterator[str]:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2, autocommit=True) as conn:
            name = f"stratum_outage_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        if os.environ.get("STRATUM_TEST_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL must answer on 127.0.0.1:5432 for the run database tests")
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    yield name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    host, port = psycopg.conninfo.conninfo_to_dict(PG_ADMIN).get("host", "127.0.0.1"), 5432
    proxy = TcpProxy(str(host), port)
    yield proxy
    proxy.close()


@pytest.fixture
async def gw(
    proxy: TcpProxy,
    database: str,
    make_gateway: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
) -> Any:
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
    return await make_gateway(make_settings(workflows={"database_url": url}))


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
