"""Import and export tasks, which Anaplan's docs describe alike under both: ``POST``/``GET
.../{imports|exports}/{id}/tasks`` and ``GET``/``DELETE .../tasks/{taskId}``.
"""

from __future__ import annotations

from typing import Any, cast

from litestar import Request, Response, delete, get, post
from litestar.params import FromPath

from sandboxes.anaplan.tenant import _Sandbox
from sandboxes.anaplan.wire import _MODEL, AnaplanError, _json_body, _object, _page
from sandboxes.faults import Scope, relative_path

__all__ = ["cancel_task", "list_tasks", "read_task", "start_task"]


def _kind(request: Request[Any, Any, Any]) -> str:
    """``imports`` or ``exports``: which kind of action a task path is under."""
    segments = relative_path(cast("Scope", request.scope)).split("/")
    return segments[segments.index("tasks") - 2]


# One route per kind: Litestar routes a static segment ("imports") before a parameter and never backtracks.
_TASKS = [f"{_MODEL}/{kind}/{{action_id:str}}/tasks" for kind in ("imports", "exports")]
_TASK = [f"{path}/{{task_id:str}}" for path in _TASKS]


@post(_TASKS, status_code=200)
async def start_task(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    action_id: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    body = await _json_body(request)
    locale = body.get("localeName", "en_US")
    if not isinstance(locale, str) or not locale:
        raise AnaplanError(400, "localeName must be a locale such as en_US")
    task = sandbox.start_task(model, _kind(request), action_id)
    return _object(request, "task", sandbox.render_task(task, summary=True), "task")


@get(_TASKS)
async def list_tasks(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    action_id: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    kind = _kind(request)
    sandbox.action(model, kind, action_id)
    items = [
        sandbox.render_task(task, summary=True)
        for task in model.tasks.values()
        if task.kind == kind and task.action_id == action_id
    ]
    return _page(request, sandbox, "tasks", items, "task")


@get(_TASK)
async def read_task(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    action_id: FromPath[str],
    task_id: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    task = sandbox.task(model, _kind(request), action_id, task_id)
    return _object(request, "task", sandbox.poll(model, task), "task")


@delete(_TASK, status_code=200)
async def cancel_task(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    action_id: FromPath[str],
    task_id: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    task = sandbox.task(model, _kind(request), action_id, task_id)
    return _object(request, "task", sandbox.cancel(model, task), "task")
