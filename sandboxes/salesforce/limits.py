"""Limits (REST API Developer Guide, "Limits"): ``GET /services/data/vXX.X/limits``, the org's daily
API request allowance and what is left of it (the same count ``Sforce-Limit-Info`` reports).
"""

from __future__ import annotations

from typing import TypeAlias

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from sandboxes.salesforce.org import Org
from sandboxes.salesforce.wire import json_response

__all__ = ["limits"]


# Handlers receive the org through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[Org]


@get("/services/data/{version:str}/limits")
async def limits(version: FromPath[str], sandbox: _Sandbox) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(sandbox.limits())
