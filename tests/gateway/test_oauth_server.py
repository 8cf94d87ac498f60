"""The development authorization server, and the gateway trusting an external issuer instead."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from apis.config import Settings
from apis.security import JwksSource, TokenVerifier
from tests.rate_windows import clear_of_a_window_edge


def _secret(gw: Any, client_id: str = "stratum-demo") -> str:
    secret: str = gw.runtime.dev_server.clients[client_id].client_secret
    return secret


async def test_client_secret_basic_and_post_both_work(gw: Any) -> None:
    basic = base64.b64encode(f"stratum-demo:{_secret(gw)}".encode()).decode()
    by_basic = await gw.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "system:read"},
        headers={"Authorization": f"Basic {basic}"},
    )
    by_post = await gw.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "stratum-demo", "client_secret": _secret(gw)},
    )
    for response in (by_basic, by_post):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"].lower() == "bearer"
        assert body["expires_in"] == 3600
        assert response.headers["cache-control"] == "no-store"
    assert by_basic.json()["scope"] == "system:read"
    # The token works on the gateway.
    token = by_basic.json()["access_token"]
    assert jwt.decode(token, gw.runtime.dev_server.keys.public).header["typ"] == "at+jwt"
    response = await gw.client.get(
        "/system/v1/crm/accounts/001000000000000AAA", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code in (200, 404)


async def test_bad_client_credentials_are_refused(gw: Any) -> None:
    response = await gw.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "stratum-demo", "client_secret": "wrong"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "wrong" not in response.text


async def test_a_client_only_gets_scopes_it_is_allowed(gw: Any) -> None:
    response = await gw.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "stratum-process-tier",
            "client_secret": _secret(gw, "stratum-process-tier"),
            "scope": "system:read process:admin",
        },
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "system:read"


async def test_metadata_and_jwks(gw: Any) -> None:
    metadata = (await gw.client.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == gw.runtime.settings.issuer
    assert metadata["token_endpoint"].endswith("/oauth/token")
    assert "client_credentials" in metadata["grant_types_supported"]
    jwks = (await gw.client.get("/oauth/jwks")).json()
    assert jwks["keys"]
    assert all("d" not in key for key in jwks["keys"])  # never the private part


def test_the_signing_key_is_generated_once_and_kept(make_settings: Callable[..., Settings]) -> None:
    from apis.oauth_server import DevAuthorizationServer

    settings = make_settings()
    first = DevAuthorizationServer(issuer="http://x", audience="a", data_dir=settings.data_dir)
    second = DevAuthorizationServer(issuer="http://x", audience="a", data_dir=settings.data_dir)
    assert first.keys.public_jwks == second.keys.public_jwks
    key_file = Path(settings.data_dir) / "signing-key.json"
    assert key_file.stat().st_mode & 0o777 == 0o600


async def test_an_external_issuer_works_with_only_configuration() -> None:
    # A stand-in for an external identity provider: its own key, served as JWKS over HTTP.
    key = RSAKey.generate_key(2048, parameters={"kid": "idp-1"})
    jwks = KeySet([key]).as_dict(private=False)
    idp = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=jwks)))
    verifier = TokenVerifier(
        issuer="https://login.example.com/tenant",
        audience="api://stratum",
        algorithms=["RS256"],
        jwks=JwksSource(jwks_url="https://login.example.com/tenant/jwks", http=idp),
    )
    now = int(time.time())
    token = jwt.encode(
        {"alg": "RS256", "typ": "at+jwt", "kid": "idp-1"},
        {
            "iss": "https://login.example.com/tenant",
            "aud": "api://stratum",
            "sub": "app-7",
            "client_id": "app-7",
            "iat": now,
            "exp": now + 60,
            "jti": "j",
            "scope": "system:read",
        },
        KeySet([key]),
    )
    access = await verifier.verify(token)
    assert access.client_id == "app-7"
    assert access.scopes == frozenset({"system:read"})
    await idp.aclose()


async def test_deprecated_version_answers_with_deprecation_sunset_and_link(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        deprecations={
            "system/v1": {
                "deprecated_at": "2026-10-01T00:00:00+00:00",
                "sunset_at": "2027-04-01T00:00:00+00:00",
                "link": "https://docs.example/stratum/system-v2-migration",
            }
        }
    )
    gw = await make_gateway(settings)
    response = await gw.client.get("/system/v1/crm/accounts/nope", headers=gw.auth("system:read"))
    assert response.headers["deprecation"] == "@1790812800"
    assert response.headers["sunset"] == "Thu, 01 Apr 2027 00:00:00 GMT"
    assert 'rel="deprecation"' in response.headers["link"]
    process = await gw.client.post(
        "/process/v1/activation-readiness", headers=gw.auth(), json={"opportunity_id": "x"}
    )
    assert "deprecation" not in process.headers


async def test_token_requests_are_rate_limited_per_client(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    gw = await make_gateway(make_settings(rate_limit_token="2/minute"))
    await clear_of_a_window_edge()
    basic = base64.b64encode(f"stratum-demo:{_secret(gw)}".encode()).decode()
    statuses = []
    for _ in range(3):
        response = await gw.client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        statuses.append(response.status_code)
    assert statuses == [200, 200, 429]
    assert int(response.headers["retry-after"]) >= 1
    # Another client is counted apart, whether it authenticates by Basic or in the form.
    other = await gw.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "stratum-process-tier",
            "client_secret": _secret(gw, "stratum-process-tier"),
        },
    )
    assert other.status_code == 200
