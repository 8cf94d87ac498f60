"""Every route declares its scopes (or says it is public), and a route that doesn't is refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.handlers import HTTPRouteHandler

from apis.config import Settings
from apis.edge import Edge
from apis.oauth_server import ALL_SCOPES
from apis.plugin import GovernancePlugin
from apis.routing import operation
from apis.runtime import Runtime
from tests.gateway.probe import PROBE


def _handlers(app: Litestar) -> list[HTTPRouteHandler]:
    return [
        h
        for route in app.routes
        for h in getattr(route, "route_handlers", [])
        if isinstance(h, HTTPRouteHandler)
    ]


async def test_every_route_of_every_app_declares_scopes_or_public(gw: Any) -> None:
    apps = [m.app for m in gw.gateway.mounts if isinstance(m.app, Litestar) and not m.strip_prefix]
    apps.append(gw.gateway.root)
    assert len(apps) == 4
    checked = 0
    for app in apps:
        for handler in _handlers(app):
            if handler.handler_name == "options_handler":
                continue  # Litestar's automatic OPTIONS answer: public by design (see apis.middleware)
            scopes = handler.opt.get("scopes")
            public = handler.opt.get("public") is True
            assert public != (scopes is not None), (
                f"{handler.paths}: declare scopes or public, not both/neither"
            )
            if scopes is not None:
                # One of ``any_scopes`` (a route any role may read) counts as the route's scopes.
                alternatives = handler.opt.get("any_scopes") or frozenset()
                assert scopes or alternatives, f"{handler.paths}: an empty scope set lets any token in"
                assert scopes | alternatives <= set(ALL_SCOPES), (
                    f"{handler.paths}: unknown scopes {(scopes | alternatives) - set(ALL_SCOPES)}"
                )
            checked += 1
    assert checked >= 10


def test_operation_refuses_a_route_without_scopes() -> None:
    with pytest.raises(ValueError, match="declare scopes"):
        operation("GET", "/x", operation_id="x", summary="x")(lambda: None)
    with pytest.raises(ValueError, match="declare scopes"):
        operation("GET", "/x", operation_id="x", summary="x", scopes=["system:read"], public=True)(
            lambda: None
        )


async def test_a_route_that_bypassed_operation_fails_closed(settings: Settings) -> None:
    @get("/system/v9/raw", sync_to_thread=False)
    def raw() -> dict[str, str]:
        return {"leak": "data"}

    runtime = Runtime(settings)
    app = Litestar(route_handlers=[raw], plugins=[GovernancePlugin(PROBE, runtime)])
    assert runtime.dev_server is not None
    token = runtime.dev_server.issue_token("stratum-demo")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=Edge(app)), base_url="http://t") as client:
        response = await client.get("/system/v9/raw", headers={"Authorization": f"Bearer {token}"})
    await runtime.stop()
    assert response.status_code == 500
    assert "leak" not in response.text
