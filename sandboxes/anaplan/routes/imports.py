"""A model's imports: ``GET .../models/{model}/imports`` and an import task's failure dump,
``GET .../imports/{id}/tasks/{taskId}/dump``; the import tasks themselves are in
`sandboxes.anaplan.routes.tasks`.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from sandboxes.anaplan.data import ImportSpec
from sandboxes.anaplan.tenant import _Sandbox
from sandboxes.anaplan.wire import _MODEL, AnaplanError, _binary, _page

__all__ = ["download_dump", "list_imports"]


def _render_import(spec: ImportSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": spec.name,
        "importDataSourceId": spec.file_id,
        "importType": spec.import_type,
    }


@get(f"{_MODEL}/imports")
async def list_imports(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], model_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    return _page(
        request, sandbox, "imports", [_render_import(item) for item in model.imports.values()], "import"
    )


@get(f"{_MODEL}/imports/{{action_id:str}}/tasks/{{task_id:str}}/dump")
async def download_dump(
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    action_id: FromPath[str],
    task_id: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    task = sandbox.task(model, "imports", action_id, task_id)
    if sandbox.state_of(task) != "COMPLETE" or task.dump is None:
        raise AnaplanError(404, f"No failure dump is available for task {task_id}")
    return _binary(task.dump)
