"""The Anaplan sandbox: a Litestar app that answers like Anaplan's authentication service and Integration
API v2 on the wire.

Anaplan serves these from two hosts (``auth.anaplan.com`` and ``api.anaplan.com``); the sandbox serves
both at its own root, so a client that rewrites both hosts to the sandbox (or an adapter configured with
the sandbox as both URLs) works unchanged:

- ``POST /token/authenticate``: Basic authentication (user and password) -> ``{"meta", "status":
  "SUCCESS", "statusMessage": "Login successful", "tokenInfo": {"expiresAt" (ms), "tokenId",
  "tokenValue", "refreshTokenId"}}``; bad credentials 401 ``{"status": "FAILURE_BAD_CREDENTIAL", ...}``
- ``POST /token/refresh`` (``Authorization: AnaplanAuthToken {token}``): a new token, the old one ends;
  ``GET /token/validate``: the token's info
- ``/2/0/...`` with ``Authorization: AnaplanAuthToken {token}`` (missing, unknown or expired: 401):

  * ``GET /2/0/workspaces[/{ws}]`` (``tenantDetails=true`` adds ``sizeAllowance``, ``currentSize``),
    ``GET /2/0/models[/{model}]`` and ``GET /2/0/workspaces/{ws}/models[/{model}]`` (``modelDetails=true``
    adds ``memoryUsage`` and, on one model, ``modelTransactionRunning``)
  * ``GET .../models/{model}/{files|imports|exports|actions|processes}``; ``GET .../exports/{id}`` the
    export's ``exportMetadata`` (``columnCount, dataTypes, delimiter, encoding, exportFormat, headerNames,
    listNames, rowCount, separator``, as Anaplan Connect's ``ExportMetadata`` reads it)
  * ``POST .../files/{id}`` ``{"chunkCount": N or -1}`` starts an upload (an unknown id creates a new
    private file named after it, as Anaplan does); ``PUT .../files/{id}/chunks/{i}``
    (``application/octet-stream``, or ``application/x-gzip`` which is decompressed) stores a chunk (204);
    ``POST .../files/{id}/complete`` ends a ``-1`` upload; ``PUT .../files/{id}`` uploads a whole file as
    one chunk (204); ``GET .../files/{id}``, ``.../chunks`` and ``.../chunks/{i}`` download
  * ``POST .../{imports|exports}/{id}/tasks`` ``{"localeName": "en_US"}`` -> ``{"task": {"taskId",
    "taskState": "NOT_STARTED", "creationTime"}}``; ``GET .../tasks`` lists them; ``GET .../tasks/{taskId}``
    reports ``taskState`` NOT_STARTED/IN_PROGRESS until the `task_polls_to_complete`-th read, which reports
    COMPLETE with ``result {successful, failureDumpAvailable, objectId, details}``; ``DELETE`` cancels a task
    that has not run; ``GET .../imports/{id}/tasks/{taskId}/dump`` is the failed rows as CSV

- every list takes ``limit`` (clamped to `max_page_size`) and ``offset`` and answers ``meta.paging``
  ``{currentPageSize, offset, totalSize, next?, previous?}``; ``sort=+name``/``-name`` (any field) sorts it
- ``/__sandbox/...``: reset, token expiry, stats and fault injection (no auth, never faulted);
  ``GET /__sandbox/records/{revenue|files|tasks}`` the module's cells, the files and the tasks as held

Every ``/2/0`` request of a token counts against `requests_per_minute` (a fixed window per token); over
it the answer is 429 with ``Retry-After`` (seconds to the next window). Errors are
``{"status": {"code", "message"}}``.

The revenue model
-----------------
"Revenue Planning" (``data.REVENUE_MODEL_ID``) keeps a module of cells keyed by project, version and month
(see `sandboxes.anaplan.data`). Its two imports read CSV with a header row naming the columns
``project, month (YYYY-MM), currency, version (baseline|actual), amount`` (any order, an optional
``reference``). As in Anaplan, the import overwrites the cells its valid rows name and no others: a month
a project had before and the file leaves out keeps its figure, so a client that means "this project now has
only these months" writes zeros for the others (the FP&A adapter does). A zero amount empties its cell (a
number cell in Anaplan is zero when empty; the sandbox keeps only non-zero cells, so a month whose
baseline and actual are both zero is not exported). Loading the same file twice leaves the same cells.
A row fails, and is listed in the task's
failure dump, when the project is empty, the month is not a month of the model's timescale, the
version is unknown, the currency is not three capital letters or is not the project's currency (the
currency of its cells of the other version, or of its first row in the file), or the amount is not a
plain decimal number; a row with an empty amount is ignored. A file whose header lacks a column, or that
is not UTF-8, fails the whole task.

A task's work is done when it is first reported COMPLETE, or earlier when anything else needs the model's
data to be current (another task starting, an admin read), in the order the tasks were started, with the
file as it was when the task started.

The export "Export Forecast" writes, per project and month, ``project,month,currency,amount,source``:
the forecast of a month is its actual when the month has one (``source`` ``actual``), else its baseline
(``source`` ``baseline``). Its output is the file with the export's id.

Unverified
----------
Choices made without an Anaplan tenant to compare against:

- the 401 bodies (``{"status": "FAILURE_BAD_CREDENTIAL", "statusMessage": "Login failed"}`` from the
  auth service, ``{"status": {"code": 401, "message": ...}}`` from the API) and all error messages
- certificate authentication is not offered (``CACertificate`` answers 401)
- the fixed one-minute, per-token request window and the 429 body; Anaplan documents 429 without
  publishing its limits
- ``currentPageSize`` is the size of the page served; the default page is the whole list up to
  `max_page_size`; ``next``/``previous`` are absolute URLs
- the ``details`` of a finished import (``type`` ``moduleRowsProcessed`` and its ``values`` names),
  ``successful`` false whenever a row failed, and the dump's columns (``_Line_``, the file's columns,
  ``_Error_1_``)
- an import whose file upload is unfinished completes unsuccessfully rather than being refused
- an export's metadata: the ``dataTypes`` and ``listNames`` of the forecast's columns (the field names and
  their meaning are those Anaplan Connect reads), and ``rowCount`` as the rows the export would write now
- chunk indexes beyond a declared ``chunkCount`` answer 400; other content types than octet-stream and
  gzip answer 415

Where things live
-----------------
`sandboxes.anaplan.routes` has one module per group of Anaplan's API docs: ``authentication`` (the auth
host), ``workspaces`` (and models), ``files`` (and chunks), ``imports``, ``exports`` (and their metadata),
``tasks`` (of imports and exports) and ``actions`` (and processes). `sandboxes.anaplan.tenant` holds the
tenant's state, with the token service in `sandboxes.anaplan.tokens` and the revenue module's import and
export work in `sandboxes.anaplan.revenue`; `sandboxes.anaplan.wire` has the shared wire helpers (errors,
bodies, the object and page envelopes); `sandboxes.anaplan.admin` the ``/__sandbox`` routes. This module
assembles the app.
"""

from __future__ import annotations

import logging
import math
from typing import Any, cast

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException

from sandboxes.anaplan.admin import expire_tokens, reset, stats, stored_records
from sandboxes.anaplan.routes.actions import list_actions, list_processes
from sandboxes.anaplan.routes.authentication import authenticate, refresh_token, validate_token
from sandboxes.anaplan.routes.exports import list_exports, read_export
from sandboxes.anaplan.routes.files import (
    complete_upload,
    download_chunk,
    download_file,
    list_chunks,
    list_files,
    start_upload,
    upload_chunk,
    upload_whole_file,
)
from sandboxes.anaplan.routes.imports import download_dump, list_imports
from sandboxes.anaplan.routes.tasks import cancel_task, list_tasks, read_task, start_task
from sandboxes.anaplan.routes.workspaces import (
    list_all_models,
    list_models,
    list_workspaces,
    read_any_model,
    read_model,
    read_workspace,
)
from sandboxes.anaplan.tenant import AnaplanSandbox, AnaplanSandboxSettings
from sandboxes.anaplan.wire import _JSON, _MAX_BODY, ADMIN_PREFIX, API_PREFIX, AnaplanError, _json
from sandboxes.anaplan.wire import _json_body as _json_body  # read by tests/gateway/test_hostile_input.py
from sandboxes.asgi_headers import header
from sandboxes.assembly import sandbox_app, send_json
from sandboxes.faults import ASGIApp, Receive, Scope, Send, relative_path
from sandboxes.request_log import RequestLogEntry

__all__ = [
    "ADMIN_PREFIX",
    "API_PREFIX",
    "AnaplanError",
    "AnaplanSandbox",
    "AnaplanSandboxSettings",
    "RequestLogEntry",
    "create_anaplan_sandbox",
]


logger = logging.getLogger(__name__)


def _on_anaplan_error(_: Request[Any, Any, Any], exc: AnaplanError) -> Response[bytes]:
    return _json(exc.body(), exc.status, exc.headers)


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    path = relative_path(cast("Scope", request.scope))
    if path.startswith(API_PREFIX + "/") or path.startswith("/token/"):
        message = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, str(exc.detail))
        return _json(AnaplanError(exc.status_code, message).body(), exc.status_code, exc.headers)
    return _json({"status_code": exc.status_code, "detail": exc.detail}, exc.status_code, exc.headers)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("anaplan sandbox failed on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(AnaplanError(500, "Internal Server Error").body(), 500)


# ---------------------------------------------------------------------------------------------------------
# ASGI layers around the Litestar router
# ---------------------------------------------------------------------------------------------------------


async def _send_error(send: Send, error: AnaplanError) -> None:
    await send_json(send, error.status, error.body(), _JSON, error.headers)


class _ApiGate:
    """Authenticates and meters ``/2/0/...`` before Litestar routes it, so unroutable paths and wrong
    methods are refused or counted exactly like every other API request."""

    def __init__(self, app: ASGIApp, sandbox: AnaplanSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = relative_path(scope)
        if scope["type"] != "http" or not (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        token = self.sandbox.token_of(header(scope, b"authorization"))
        if token is None:
            await _send_error(
                send, AnaplanError(401, "Full authentication is required to access this resource")
            )
            return
        wait = self.sandbox.admit(token)
        if wait is not None:
            retry_after = str(max(1, math.ceil(wait)))
            await _send_error(send, AnaplanError(429, "Too Many Requests", {"Retry-After": retry_after}))
            return
        await self.app(scope, receive, send)


def create_anaplan_sandbox(settings: AnaplanSandboxSettings | None = None) -> Litestar:
    """Build a fresh sandbox tenant as a Litestar app.

    Mount it anywhere by stripping the mount prefix from ``path`` and setting ASGI ``root_path``; every
    absolute URL it hands out (``meta.paging.next``, ``meta.schema``) is built from the request's scheme,
    host and ``root_path``. In-process handles for tests: ``app.state.sandbox`` (`AnaplanSandbox`, whose
    ``clock`` may be replaced) and ``app.state.faults`` (`FaultInjector`).
    """
    settings = settings or AnaplanSandboxSettings()
    sandbox = AnaplanSandbox(settings)
    return sandbox_app(
        sandbox,
        route_handlers=[
            authenticate,
            refresh_token,
            validate_token,
            list_workspaces,
            read_workspace,
            list_all_models,
            read_any_model,
            list_models,
            read_model,
            list_files,
            start_upload,
            upload_whole_file,
            download_file,
            list_chunks,
            download_chunk,
            upload_chunk,
            complete_upload,
            list_imports,
            list_exports,
            read_export,
            list_actions,
            list_processes,
            start_task,
            list_tasks,
            read_task,
            cancel_task,
            download_dump,
            reset,
            expire_tokens,
            stats,
            stored_records,
        ],
        exception_handlers={
            AnaplanError: _on_anaplan_error,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        gate=lambda router: _ApiGate(router, sandbox),
        admin_prefix=ADMIN_PREFIX,
        request_max_body_size=_MAX_BODY,
    )
