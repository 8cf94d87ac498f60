"""Shared fixtures: settings in a throwaway data dir, the whole gateway in process, tokens, real Redis."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

import apis.logging
from apis.config import Settings, load_settings
from apis.edge import Edge
from apis.gateway import Gateway, build_gateway

REDIS_URL = os.environ.get("STRATUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# Tests read log lines with structlog.testing.capture_logs, which needs uncached loggers: keep the
# gateway from installing its (cached) production pipeline in this process. The pipeline itself is tested
# in test_observability, and end to end through `stratum serve`'s output in tests/e2e.
structlog.configure(cache_logger_on_first_use=False)
apis.logging._configured = True


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _redis_answers():
        if os.environ.get("STRATUM_TEST_REQUIRE_REDIS"):
            pytest.fail("Redis must answer on 127.0.0.1:6379 (scripts/ensure-redis starts one)")
        pytest.skip("no Redis on 127.0.0.1:6379 (scripts/ensure-redis starts one)")
    return REDIS_URL


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", str(tmp_path / "data"))
        # No scheduled invoice status syncs in tests unless a test asks (they would add runs at random), nor
        # Business Central subscriptions at start-up (they would spend a test's injected BC faults).
        overrides.setdefault(
            "invoice_status", {"schedule_enabled": False, "business_central_subscriptions": False}
        )
        return load_settings({}, **overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


class GatewayHarness:
    """A gateway in process, with its lifespan run, and an httpx client on it."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.app = Edge(gateway)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
        )

    @property
    def runtime(self) -> Any:
        return self.gateway.runtime

    def token(self, scope: str | None = None, client_id: str = "stratum-demo") -> str:
        assert self.runtime.dev_server is not None
        token: str = self.runtime.dev_server.issue_token(client_id, scope)
        return token

    def auth(self, scope: str | None = None, client_id: str = "stratum-demo") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(scope, client_id)}"}

    def sandbox_state(self, vendor: str) -> Any:
        """The mounted sandbox's own store (``.records``), to check what a vendor really holds."""
        mount = next(m for m in self.gateway.mounts if m.prefix == f"/sandboxes/{vendor}")
        return mount.app.state.sandbox

    def sandbox(self, vendor: str = "salesforce") -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=f"http://testserver/sandboxes/{vendor}"
        )

    async def start(self) -> None:
        await self.gateway.runtime.start()

    async def stop(self) -> None:
        await self.client.aclose()
        await self.gateway.runtime.stop()


@pytest.fixture
async def make_gateway() -> AsyncIterator[Callable[[Settings], Any]]:
    harnesses: list[GatewayHarness] = []

    async def make(settings: Settings) -> GatewayHarness:
        harness = GatewayHarness(build_gateway(settings))
        await harness.start()
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        await harness.stop()


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], settings: Settings) -> GatewayHarness:
    harness: GatewayHarness = await make_gateway(settings)
    return harness


@pytest.fixture
def unique() -> Callable[[str], str]:
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:12]}"
