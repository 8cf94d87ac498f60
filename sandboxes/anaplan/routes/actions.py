"""A model's actions and processes: ``GET .../models/{model}/actions`` and ``.../processes`` (none in the
revenue model).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from sandboxes.anaplan.tenant import _Sandbox
from sandboxes.anaplan.wire import _MODEL, _page

__all__ = ["list_actions", "list_processes"]


@get(f"{_MODEL}/actions")
async def list_actions(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], model_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.model(model_id, workspace_id)
    return _page(request, sandbox, "actions", [], "action")


@get(f"{_MODEL}/processes")
async def list_processes(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], model_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.model(model_id, workspace_id)
    return _page(request, sandbox, "processes", [], "process")
