"""A model's exports: ``GET .../models/{model}/exports`` and one export's metadata,
``GET .../exports/{id}``; the export tasks themselves are `sandboxes.anaplan.routes.tasks`.
"""

from __future__ import annotations

from typing import Any, cast

from litestar import Request, Response, get
from litestar.params import FromPath

from sandboxes.anaplan.data import ExportSpec
from sandboxes.anaplan.tenant import _Sandbox
from sandboxes.anaplan.wire import _MODEL, _object, _page

__all__ = ["list_exports", "read_export"]


def _render_export(spec: ExportSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": spec.name,
        "exportType": spec.export_type,
        "exportFormat": spec.export_format,
        "encoding": spec.encoding,
        "layout": spec.export_type,
    }


@get(f"{_MODEL}/exports")
async def list_exports(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], model_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    return _page(
        request, sandbox, "exports", [_render_export(item) for item in model.exports.values()], "export"
    )


@get(f"{_MODEL}/exports/{{export_id:str}}")
async def read_export(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    export_id: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    """An export's metadata: what its output file will hold, described from the export's own columns."""
    model = sandbox.model(model_id, workspace_id)
    spec = cast("ExportSpec", sandbox.action(model, "exports", export_id))
    sandbox.settle(model)  # the row count is that of the model's current data
    metadata = {
        "columnCount": len(spec.columns),
        "dataTypes": [column.data_type for column in spec.columns],
        "delimiter": spec.delimiter,
        "encoding": spec.encoding,
        "exportFormat": spec.export_format,
        "headerNames": [column.header for column in spec.columns],
        "listNames": [column.list_name for column in spec.columns],
        "rowCount": len(sandbox.forecast_rows()),
        "separator": spec.separator,
    }
    return _object(request, "exportMetadata", metadata, "exportMetadata")
