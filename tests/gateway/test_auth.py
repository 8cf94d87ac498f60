"""OAuth 2.0 resource-server behaviour (RFC 6750, RFC 9068) as a caller sees it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from apis.config import Settings
from apis.edge import Edge
from apis.runtime import Runtime
from tests.gateway.probe import Calls, create_probe_app


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
async def probe(settings: Settings) -> Any:
    runtime = Runtime(settings)
    app = Edge(create_probe_app(runtime, Calls()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield runtime, client
    await runtime.stop()


def _claims(runtime: Runtime, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": runtime.settings.issuer,
        "aud": runtime.settings.oauth_audience,
        "sub": "stratum-demo",
        "client_id": "stratum-demo",
        "iat": now,
        "exp": now + 300,
        "jti": "t1",
        "scope": "system:read",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(runtime: Runtime, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    assert runtime.dev_server is not None
    return jwt.encode(header or {"alg": "RS256", "typ": "at+jwt"}, claims, runtime.dev_server.keys.private)


async def _get(
    client: httpx.AsyncClient, token: str | None, path: str = "/system/v9/items/a"
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.get(path, headers=headers)


async def test_no_credentials_get_a_bare_challenge(probe: Any) -> None:
    _, client = probe
    response = await _get(client, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="stratum"'
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthenticated"


async def test_a_valid_token_passes(probe: Any) -> None:
    runtime, client = probe
    response = await _get(client, _sign(runtime, _claims(runtime)))
    assert response.status_code == 200
    assert response.json() == {"id": "a"}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "wrong_typ",
        "no_typ",
        "missing_client_id",
        "garbage",
        "other_key",
    ],
)
async def test_bad_tokens_are_invalid_token(probe: Any, case: str) -> None:
    runtime, client = probe
    now = int(time.time())
    token = {
        "expired": lambda: _sign(runtime, _claims(runtime, iat=now - 7200, exp=now - 3600)),
        "wrong_audience": lambda: _sign(runtime, _claims(runtime, aud="someone-else")),
        "wrong_issuer": lambda: _sign(runtime, _claims(runtime, iss="https://evil.example")),
        "wrong_typ": lambda: _sign(runtime, _claims(runtime), {"alg": "RS256", "typ": "JWT"}),
        "no_typ": lambda: _sign(runtime, _claims(runtime), {"alg": "RS256"}),
        "missing_client_id": lambda: _sign(runtime, _claims(runtime, client_id=None)),
        "garbage": lambda: "not-a-jwt",
        "other_key": lambda: jwt.encode(
            {"alg": "RS256", "typ": "at+jwt"}, _claims(runtime), KeySet([RSAKey.generate_key(2048)])
        ),
    }[case]()
    response = await _get(client, token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["code"] == "invalid-token"


async def test_alg_none_is_refused(probe: Any) -> None:
    runtime, client = probe
    header = _b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    payload = _b64(json.dumps(_claims(runtime)).encode())
    response = await _get(client, f"{header}.{payload}.")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_hs256_signed_with_the_public_key_is_refused(probe: Any) -> None:
    # The classic key-confusion attack: HMAC "signed" with the issuer's public key material.
    runtime, client = probe
    assert runtime.dev_server is not None
    public = json.dumps(runtime.dev_server.keys.public_jwks["keys"][0]).encode()
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
    payload = _b64(json.dumps(_claims(runtime)).encode())
    for secret in (public, runtime.dev_server.keys.public.keys[0].as_pem(private=False)):
        signature = _b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        response = await _get(client, f"{header}.{payload}.{signature}")
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_missing_scope_is_403_insufficient_scope(probe: Any) -> None:
    runtime, client = probe
    token = _sign(runtime, _claims(runtime, scope="experience:sales"))
    response = await client.post(
        "/system/v9/charges",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k1"},
        json={"customer_id": "c1", "amount": "10.00", "currency": "USD"},
    )
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    body = response.json()
    assert body["code"] == "insufficient-scope"
    assert body["required_scopes"] == ["system:write"]


async def test_basic_auth_is_not_a_bearer_token(probe: Any) -> None:
    _, client = probe
    response = await client.get("/system/v9/items/a", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="stratum"'
