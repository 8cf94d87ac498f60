"""The development token endpoint under attack: secrets stay out of Redis key names, guessing one client's
secret is rate limited, unknown clients look like wrong secrets, and the log says who and why."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from apis.config import Settings
from apis.edge import Edge
from apis.gateway import _root_app
from apis.runtime import Runtime
from tests.rate_windows import clear_of_a_window_edge

_VOLATILE = {"x-correlation-id", "date", "content-length", "ratelimit", "ratelimit-policy"}


class TokenEndpoint:
    """The gateway's root app (token endpoint included) on its own runtime, with its own clients."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        path = Path(settings.data_dir) / "clients.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client_id = client_id
        # Long and distinctive, so a search of every Redis key for it cannot miss or match by chance.
        self.secret = f"{'s3cr3t' * 6}-{client_id}"
        path.write_text(
            json.dumps([{"client_id": client_id, "client_secret": self.secret, "scopes": ["system:read"]}])
        )
        self.runtime = Runtime(settings)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=Edge(_root_app(self.runtime, []))), base_url="http://t"
        )

    async def basic(self, client_id: str, secret: str) -> httpx.Response:
        credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return await self.http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {credentials}"},
        )

    async def post(self, client_id: str, secret: str) -> httpx.Response:
        return await self.http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )

    async def close(self) -> None:
        await self.http.aclose()
        await self.runtime.stop()


@pytest.fixture
async def make_endpoint(
    make_settings: Callable[..., Settings], unique: Callable[[str], str]
) -> AsyncIterator[Callable[..., Any]]:
    endpoints: list[TokenEndpoint] = []

    def make(**overrides: Any) -> TokenEndpoint:
        endpoint = TokenEndpoint(make_settings(**overrides), unique("token-client"))
        endpoints.append(endpoint)
        return endpoint

    yield make
    for endpoint in endpoints:
        await endpoint.close()


def _answer(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in _VOLATILE}
    return response.status_code, response.json(), headers


async def test_no_redis_key_holds_a_client_secret(make_endpoint: Any, redis_url: str) -> None:
    endpoint: TokenEndpoint = make_endpoint(redis_url=redis_url)
    good = await endpoint.basic(endpoint.client_id, endpoint.secret)
    assert good.status_code == 200, good.text
    wrong_secret = f"{'guess' * 8}-{endpoint.client_id}"
    assert (await endpoint.basic(endpoint.client_id, wrong_secret)).status_code == 401

    forbidden = [
        text.encode()
        for secret in (endpoint.secret, wrong_secret)
        for text in (
            secret,
            base64.b64encode(f"{endpoint.client_id}:{secret}".encode()).decode(),
            base64.b64encode(f"{endpoint.client_id}:{secret}".encode()).decode()[-32:],
        )
    ]
    redis = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match="*", count=1000)]
    finally:
        await redis.aclose()
    leaked = [key for key in keys if any(secret in key for secret in forbidden)]
    assert leaked == []
    # The limiter did write keys for this client: under its id.
    assert any(endpoint.client_id.encode() in key for key in keys)


async def test_guessing_one_clients_secret_is_rate_limited(make_endpoint: Any, redis_url: str) -> None:
    endpoint: TokenEndpoint = make_endpoint(redis_url=redis_url, rate_limit_token="3/minute")
    await clear_of_a_window_edge()
    # Every guess is another secret, so every Authorization header differs.
    statuses = [(await endpoint.basic(endpoint.client_id, f"guess-{n}")).status_code for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    refused = await endpoint.basic(endpoint.client_id, endpoint.secret)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1


async def test_made_up_client_ids_share_the_callers_budget(make_endpoint: Any) -> None:
    # In-process counters: on a shared Redis, every test's caller is 127.0.0.1.
    endpoint: TokenEndpoint = make_endpoint(rate_limit_token="3/minute")
    await clear_of_a_window_edge()
    statuses = [
        (await endpoint.post(f"{endpoint.client_id}-nobody-{n}", "guess")).status_code for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    # The real client's own budget is untouched by the made-up ones.
    assert (await endpoint.post(endpoint.client_id, endpoint.secret)).status_code == 200


@pytest.mark.parametrize("method", ["basic", "post"])
async def test_unknown_client_and_wrong_secret_get_the_same_answer(
    make_endpoint: Any, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint: TokenEndpoint = make_endpoint()
    compares: list[bytes] = []
    compare_digest = hmac.compare_digest

    def counting_compare(a: Any, b: Any) -> bool:
        compares.append(a)
        return compare_digest(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting_compare)
    send = getattr(endpoint, method)
    wrong_secret = await send(endpoint.client_id, "not-the-secret")
    wrong_secret_compares, compares[:] = list(compares), []
    unknown_client = await send(f"{endpoint.client_id}-unknown", "not-the-secret")

    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert _answer(unknown_client) == _answer(wrong_secret)
    # The same work: an unknown client's secret is compared too, as often, in constant time.
    assert len(compares) == len(wrong_secret_compares) >= 1


async def test_a_basic_header_that_is_not_utf8_is_an_invalid_client(make_endpoint: Any) -> None:
    endpoint: TokenEndpoint = make_endpoint()
    response = await endpoint.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xfa").decode()},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_token_requests_log_the_named_client_and_why_one_was_refused(make_endpoint: Any) -> None:
    endpoint: TokenEndpoint = make_endpoint()
    with capture_logs() as logs:
        await endpoint.basic(endpoint.client_id, endpoint.secret)
        await endpoint.post(endpoint.client_id, "wrong-guess-xyz")
        await endpoint.basic(f"{endpoint.client_id}-unknown", "wrong-guess-xyz")
    access = [e for e in logs if e["event"] == "request" and e["path"] == "/oauth/token"]
    assert [(e["client_id"], e["status"]) for e in access] == [
        (endpoint.client_id, 200),
        (endpoint.client_id, 401),
        (f"{endpoint.client_id}-unknown", 401),
    ]
    refused = [e for e in logs if e["event"] == "token_refused"]
    assert [(e["log_level"], e["client_id"], e["reason"]) for e in refused] == [
        ("info", endpoint.client_id, "wrong client secret"),
        ("info", f"{endpoint.client_id}-unknown", "unknown client"),
    ]
    text = repr(logs)
    assert endpoint.secret not in text
    assert "wrong-guess-xyz" not in text
