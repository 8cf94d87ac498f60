"""Workspaces and models: ``GET /2/0/workspaces[/{ws}]``, ``GET /2/0/models[/{model}]`` and
``GET /2/0/workspaces/{ws}/models[/{model}]``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from sandboxes.anaplan.tenant import _Sandbox
from sandboxes.anaplan.wire import _MODEL, _WS, API_PREFIX, _flag, _object, _page

__all__ = [
    "list_all_models",
    "list_models",
    "list_workspaces",
    "read_any_model",
    "read_model",
    "read_workspace",
]


@get(_WS)
async def list_workspaces(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    details = _flag(request, "tenantDetails")
    items = [sandbox.render_workspace(workspace, details) for workspace in sandbox.workspaces.values()]
    return _page(request, sandbox, "workspaces", items, "workspace")


@get(f"{_WS}/{{workspace_id:str}}")
async def read_workspace(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    workspace = sandbox.workspace(workspace_id)
    rendered = sandbox.render_workspace(workspace, _flag(request, "tenantDetails"))
    return _object(request, "workspace", rendered, "workspace")


@get(f"{API_PREFIX}/models")
async def list_all_models(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    details = _flag(request, "modelDetails")
    items = [sandbox.render_model(model, details) for model in sandbox.models.values()]
    return _page(request, sandbox, "models", items, "model")


@get(f"{API_PREFIX}/models/{{model_id:str}}")
async def read_any_model(
    request: Request[Any, Any, Any], model_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    model = sandbox.model(model_id)
    return _object(
        request, "model", sandbox.render_model(model, _flag(request, "modelDetails"), True), "model"
    )


@get(f"{_WS}/{{workspace_id:str}}/models")
async def list_models(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.workspace(workspace_id)
    details = _flag(request, "modelDetails")
    items = [
        sandbox.render_model(model, details)
        for model in sandbox.models.values()
        if model.spec.workspace_id == workspace_id
    ]
    return _page(request, sandbox, "models", items, "model")


@get(_MODEL)
async def read_model(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], model_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    return _object(
        request, "model", sandbox.render_model(model, _flag(request, "modelDetails"), True), "model"
    )
