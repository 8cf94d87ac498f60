"""Answers nested too deep to parse safely, from a vendor, a token endpoint or another tier, are bad
answers (502 or a refused token), never a RecursionError; binary downloads are not measured as JSON."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from apis.oauth_client import ClientCredentialsAuth, TokenFetchError
from apis.problems import ProblemError
from apis.tier_client import TierClient
from system_apis.errors import VendorBadResponse
from system_apis.vendor_http import BreakerPolicy, RetryPolicy, VendorHttpClient, VendorHttpConfig

DEEP = b"[" * 5000 + b"]" * 5000
DEEP_FIELD = b'{"access_token": "t", "junk": ' + DEEP + b"}"


def _answer(body: bytes) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, headers={"Content-Type": "application/json"}, content=body)


def _vendor(body: bytes, content_type: str, status: int = 200) -> VendorHttpClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Content-Type": content_type}, content=body)

    config = VendorHttpConfig(
        base_url="https://vendor.example",
        timeout_seconds=5.0,
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(failure_threshold=0),
    )
    return VendorHttpClient("acme", config, transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/vnd.oracle.resource+json", "text/plain"]
)
@pytest.mark.parametrize("status", [200, 400])
async def test_a_deep_vendor_answer_is_a_bad_response(content_type: str, status: int) -> None:
    client = _vendor(DEEP_FIELD, content_type, status)
    try:
        with pytest.raises(VendorBadResponse, match="nested deeper"):
            await client.send("GET", "records")
    finally:
        await client.aclose()


async def test_a_binary_download_is_not_measured_as_json() -> None:
    client = _vendor(DEEP, "application/octet-stream")
    try:
        response = await client.send("GET", "files/1/chunks/0")
    finally:
        await client.aclose()
    assert response.content == DEEP


async def test_a_token_endpoint_answering_deep_json_is_a_token_failure() -> None:
    auth = ClientCredentialsAuth(
        token_url="https://login.example/token",
        client_id="c",
        client_secret="s",
        transport=httpx.MockTransport(
            _answer(DEEP_FIELD)
        ),
    )
    try:
        with pytest.raises(TokenFetchError, match="nested too deep"):
            await auth.access_token()
    finally:
        await auth.aclose()


@pytest.mark.parametrize("body", [DEEP_FIELD, b"<html>not json</html>"], ids=["deep", "not-json"])
async def test_another_tiers_unusable_answer_is_a_502(body: bytes) -> None:
    client = TierClient(
        base_url="http://system.test",
        auth=httpx.Auth(),
        transport=httpx.MockTransport(_answer(body)),
    )
    try:
        with pytest.raises(ProblemError) as raised:
            await client._get("/system/v1/thing", dict)
    finally:
        await client.aclose()
    assert raised.value.kind.code == "vendor-bad-response"
