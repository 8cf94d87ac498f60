"""A model's files, uploaded and downloaded in chunks: ``.../models/{model}/files[/{id}[/chunks[/{i}]]]``,
``POST .../files/{id}`` to start an upload and ``POST .../files/{id}/complete`` to end one.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post, put
from litestar.params import FromPath

from sandboxes.anaplan.tenant import _Sandbox
from sandboxes.anaplan.wire import _MODEL, AnaplanError, _binary, _chunk_body, _json_body, _object, _page

__all__ = [
    "complete_upload",
    "download_chunk",
    "download_file",
    "list_chunks",
    "list_files",
    "start_upload",
    "upload_chunk",
    "upload_whole_file",
]


_FILE = f"{_MODEL}/files/{{file_id:str}}"


@get(f"{_MODEL}/files")
async def list_files(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], model_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    return _page(request, sandbox, "files", [item.render() for item in model.files.values()], "file")


@post(_FILE, status_code=200)
async def start_upload(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    file_id: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    body = await _json_body(request)
    count = body.get("chunkCount")
    if not isinstance(count, int) or isinstance(count, bool) or count < -1:
        raise AnaplanError(400, "chunkCount must be -1 or the number of chunks")
    started = sandbox.start_upload(model, file_id, count)
    return _object(request, "file", started.render(), "file")


@put(_FILE, status_code=204)
async def upload_whole_file(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    file_id: FromPath[str],
    sandbox: _Sandbox,
) -> None:
    model = sandbox.model(model_id, workspace_id)
    sandbox.put_whole(model, file_id, await _chunk_body(request))


@get(_FILE)
async def download_file(
    workspace_id: FromPath[str], model_id: FromPath[str], file_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    return _binary(sandbox.file(model, file_id).content())


@get(f"{_FILE}/chunks")
async def list_chunks(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    file_id: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    found = sandbox.file(model, file_id)
    items = [{"id": str(index), "name": f"Chunk {index}"} for index in sorted(found.chunks)]
    return _page(request, sandbox, "chunks", items, "chunk")


@get(f"{_FILE}/chunks/{{chunk:str}}")
async def download_chunk(
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    file_id: FromPath[str],
    chunk: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    found = sandbox.file(model, file_id)
    if not chunk.isdigit() or int(chunk) not in found.chunks:
        raise AnaplanError(404, f"Chunk {chunk} not found")
    return _binary(found.chunks[int(chunk)])


@put(f"{_FILE}/chunks/{{chunk:str}}", status_code=204)
async def upload_chunk(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    file_id: FromPath[str],
    chunk: FromPath[str],
    sandbox: _Sandbox,
) -> None:
    model = sandbox.model(model_id, workspace_id)
    sandbox.put_chunk(model, file_id, chunk, await _chunk_body(request))


@post(f"{_FILE}/complete", status_code=200)
async def complete_upload(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    model_id: FromPath[str],
    file_id: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    await _json_body(request)
    return _object(request, "file", sandbox.complete_upload(model, file_id).render(), "file")
