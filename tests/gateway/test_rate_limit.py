"""Rate limits per client and tier, shared through Redis by every gateway process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from apis.config import Settings
from apis.edge import Edge
from apis.runtime import Runtime
from tests.gateway.probe import Calls, create_probe_app
from tests.rate_windows import clear_of_a_window_edge


def _register_clients(settings: Settings, *client_ids: str) -> None:
    """Clients are configuration: give this test clients no earlier run has spent budget on."""
    path = Path(settings.data_dir) / "clients.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    clients = [
        {"client_id": c, "client_secret": f"{c}-secret", "scopes": ["system:read"]} for c in client_ids
    ]
    path.write_text(json.dumps(clients))


class Instance:
    """One gateway process: its own runtime (own Redis connections, own limiter), the shared data dir."""

    def __init__(self, settings: Settings) -> None:
        self.runtime = Runtime(settings)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=Edge(create_probe_app(self.runtime, Calls()))),
            base_url="http://t",
        )

    async def get(self, client_id: str) -> httpx.Response:
        assert self.runtime.dev_server is not None
        token = self.runtime.dev_server.issue_token(client_id, "system:read")
        return await self.client.get("/system/v9/items/x", headers={"Authorization": f"Bearer {token}"})

    async def close(self) -> None:
        await self.client.aclose()
        await self.runtime.stop()


@pytest.fixture
def clients(unique: Callable[[str], str]) -> tuple[str, str]:
    return unique("client-a"), unique("client-b")


async def test_two_instances_on_one_redis_share_a_budget(
    make_settings: Callable[..., Settings], redis_url: str, clients: tuple[str, str]
) -> None:
    settings = make_settings(redis_url=redis_url, rate_limit_system="5/minute")
    _register_clients(settings, *clients)
    first, other = clients
    a, b = Instance(settings), Instance(settings)
    try:
        await clear_of_a_window_edge()
        statuses = [(await instance.get(first)).status_code for instance in (a, b, a, b, a, b)]
        assert statuses == [200, 200, 200, 200, 200, 429]
        refused = await a.get(first)
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate-limited"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit"].startswith('"system";r=0;')
        # Another client has a budget of its own.
        assert (await b.get(other)).status_code == 200
    finally:
        await a.close()
        await b.close()


async def test_without_redis_each_process_counts_alone(
    make_settings: Callable[..., Settings], clients: tuple[str, str]
) -> None:
    settings = make_settings(rate_limit_system="2/minute")
    _register_clients(settings, *clients)
    a, b = Instance(settings), Instance(settings)
    try:
        await clear_of_a_window_edge()
        assert [(await a.get(clients[0])).status_code for _ in range(3)] == [200, 200, 429]
        assert (await b.get(clients[0])).status_code == 200
    finally:
        await a.close()
        await b.close()


@pytest.fixture
async def instance(settings: Settings, clients: tuple[str, str]) -> AsyncIterator[Instance]:
    _register_clients(settings, *clients)
    probe = Instance(settings)
    yield probe
    await probe.close()


async def test_every_answer_carries_ratelimit_headers(instance: Instance, clients: tuple[str, str]) -> None:
    response = await instance.get(clients[0])
    assert response.status_code == 200
    assert response.headers["ratelimit-policy"] == '"system";q=1200;w=60'
    assert response.headers["ratelimit"].startswith('"system";r=1199;t=')
    second = await instance.get(clients[0])
    assert second.headers["ratelimit"].startswith('"system";r=1198;t=')
