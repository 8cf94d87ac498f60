"""Versions and resources (REST API Developer Guide, "Versions" and "Resources by Version"):
``GET /services/data`` lists every API version the org serves (no session needed, as in Salesforce),
``GET /services/data/vXX.X`` the resources of one.
"""

from __future__ import annotations

from typing import TypeAlias

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from sandboxes.salesforce.org import Org
from sandboxes.salesforce.wire import json_response

__all__ = ["list_resources", "list_versions"]


def _release_label(version: str) -> str:
    # Three releases a year; v61.0 was Summer '24. Only cosmetic, for the versions listing.
    try:
        index = int(float(version)) - 59
    except ValueError:
        return version
    season = ("Winter", "Spring", "Summer")[index % 3]
    return f"{season} '{24 + index // 3:02d}"


# Handlers receive the org through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[Org]


@get("/services/data")
async def list_versions(sandbox: _Sandbox) -> Response[bytes]:
    return json_response(
        [
            {"label": _release_label(number), "url": f"/services/data/{version}", "version": number}
            for version in sandbox.versions()
            for number in (version.removeprefix("v"),)
        ]
    )


@get("/services/data/{version:str}")
async def list_resources(version: FromPath[str], sandbox: _Sandbox) -> Response[bytes]:
    sandbox.check_version(version)
    base = f"/services/data/{version}"
    names = ("composite", "limits", "query", "queryAll", "sobjects")
    return json_response({name: f"{base}/{name}" for name in names})
