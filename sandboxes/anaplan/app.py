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
"""

from __future__ import annotations

import base64
import binascii
import csv
import gzip
import io
import logging
import math
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias, cast
from urllib.parse import urlencode

import msgspec
from litestar import Litestar, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.types import ASGIApp as LitestarASGIApp

from apis.json_limits import json_too_deep
from sandboxes.admin_records import RECORDS_PATH, records_response
from sandboxes.anaplan.data import (
    DEV_PASSWORD,
    DEV_USER,
    DEV_USER_GUID,
    IMPORT_COLUMNS,
    MODULE_NAME,
    TIMESCALE_END,
    TIMESCALE_START,
    VERSIONS,
    Cell,
    CellKey,
    ExportSpec,
    FileSpec,
    ImportSpec,
    ModelSpec,
    WorkspaceSpec,
    seed_cells,
    seed_models,
    seed_workspaces,
)
from sandboxes.asgi_headers import header
from sandboxes.faults import ASGIApp, FaultInjector, Receive, Scope, Send, relative_path, with_faults
from sandboxes.request_log import RequestLog, RequestLogEntry

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

ADMIN_PREFIX = "/__sandbox"
API_PREFIX = "/2/0"
_JSON = "application/json;charset=UTF-8"
_BINARY = "application/octet-stream"
_GZIP_TYPES = frozenset({"application/x-gzip", "application/gzip"})
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_MAX_PROJECT_CODE = 60
_MAX_BODY = 64 * 1024 * 1024  # Anaplan takes chunks of up to 50 MB
_FILE_ID_START = 113_000_000_000
_SUCCESS = {"code": 200, "message": "Success"}
_VALIDATION_URL = "/token/validate"


class AnaplanSandboxSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the sandbox behaves; the defaults match a fresh tenant."""

    users: tuple[tuple[str, str], ...] = ()
    """Extra ``(user, password)`` pairs; the development user (`data.DEV_USER`) is always accepted."""
    token_ttl_seconds: int = 35 * 60
    """Anaplan tokens last 35 minutes unless refreshed."""
    requests_per_minute: int = 600
    """``/2/0`` requests one token may make per minute (a fixed window); one more answers 429."""
    max_page_size: int = 5000
    """Lists serve at most this many items a page, whatever ``limit`` asks for."""
    task_polls_to_complete: int = 2
    """The status read of a task (1-based) that first reports it COMPLETE; 1 completes on the first read."""
    export_chunk_bytes: int = 10 * 1024 * 1024
    """Export output is split into chunks of at most this many bytes (Anaplan: 10 MB)."""
    timescale_start: str = TIMESCALE_START
    timescale_end: str = TIMESCALE_END


class AnaplanError(Exception):
    """An Integration API error: ``{"status": {"code", "message"}}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"status": {"code": self.status, "message": self.message}}


class _AuthFailure(Exception):
    """An authentication service error: ``{"status": "FAILURE_...", "statusMessage"}``."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class _Token:
    value: str
    token_id: str
    refresh_token_id: str
    user: str
    expires_at: float


@dataclass(slots=True)
class _File:
    spec: FileSpec
    chunk_count: int = 0
    chunks: dict[int, bytes] = field(default_factory=dict)
    completed: bool = True

    @property
    def id(self) -> str:
        return self.spec.id

    def content(self) -> bytes:
        return b"".join(self.chunks[index] for index in sorted(self.chunks))

    def missing_chunks(self) -> list[int]:
        if self.chunk_count < 0 or not self.completed:
            return [-1]
        return [index for index in range(self.chunk_count) if index not in self.chunks]

    def render(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "id": spec.id,
            "name": spec.name,
            "chunkCount": self.chunk_count,
            "delimiter": spec.delimiter,
            "encoding": spec.encoding,
            "firstDataRow": spec.first_data_row,
            "format": spec.format,
            "headerRow": spec.header_row,
            "separator": spec.separator,
        }


@dataclass(slots=True)
class _Task:
    id: str
    kind: str  # "imports" or "exports"
    action_id: str
    created_ms: int
    payload: bytes | None  # the import's file as it was when the task started
    payload_problem: str | None = None
    polls: int = 0
    done: bool = False
    cancelled: bool = False
    result: dict[str, Any] | None = None
    dump: bytes | None = None


@dataclass(slots=True)
class _Model:
    spec: ModelSpec
    files: dict[str, _File]
    imports: dict[str, ImportSpec]
    exports: dict[str, ExportSpec]
    tasks: dict[str, _Task] = field(default_factory=dict)


@dataclass(slots=True)
class _Row:
    line: int
    values: list[str]
    project: str = ""
    month: str = ""
    currency: str = ""
    version: str = ""
    amount: str = ""
    reference: str | None = None


class _DurableState(msgspec.Struct, kw_only=True):
    """What a restart keeps (`sandboxes.persistence`): the models with their files and tasks, and the
    revenue module's cells.

    A task's work is done lazily, on a read, and that read saves nothing; but the work is fully decided by
    what the request that started the task saved (the import's payload, the task's place in the model's
    order), so after a restart the same work is done again with the same result."""

    models: dict[str, _Model]
    cells: list[tuple[CellKey, Cell]]


class AnaplanSandbox:
    """All mutable state of one sandbox tenant: tokens, models, files, tasks, module cells, faults."""

    durable_type = _DurableState

    def __init__(self, settings: AnaplanSandboxSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = FaultInjector()
        self.users = {DEV_USER: DEV_PASSWORD, **dict(settings.users)}
        self.tokens: dict[str, _Token] = {}
        self.windows: dict[str, tuple[int, int]] = {}
        self.request_log: deque[RequestLogEntry] = deque(maxlen=100)
        self.workspaces: dict[str, WorkspaceSpec] = {}
        self.models: dict[str, _Model] = {}
        self.cells: dict[CellKey, Cell] = {}
        self.tokens_issued = 0
        self.throttled = 0
        self.reset()

    def reset(self) -> None:
        """Reseed the tenant and forget tokens, uploads, tasks, counters, the log and faults."""
        self.tokens.clear()
        self.windows.clear()
        self.request_log.clear()
        self.tokens_issued = 0
        self.throttled = 0
        self.faults.clear()
        self.workspaces = {workspace.id: workspace for workspace in seed_workspaces()}
        self.models = {}
        for spec in seed_models():
            files = {file.id: _File(file) for file in spec.files}
            for export in spec.exports:
                # An export's output is a file with the export's id, empty until the export first runs.
                files[export.id] = _File(FileSpec(id=export.id, name=f"{export.name}.csv", format="csv"))
            self.models[spec.id] = _Model(
                spec=spec,
                files=files,
                imports={item.id: item for item in spec.imports},
                exports={item.id: item for item in spec.exports},
            )
        self.cells = seed_cells()

    def durable_state(self) -> _DurableState:
        return _DurableState(models=self.models, cells=list(self.cells.items()))

    def restore_durable_state(self, state: _DurableState) -> None:
        self.models = state.models
        self.cells = dict(state.cells)

    # -- authentication --------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> dict[str, Any]:
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            raise _AuthFailure("FAILURE_BAD_CREDENTIAL", "Login failed")
        try:
            user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _AuthFailure("FAILURE_BAD_CREDENTIAL", "Login failed") from None
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
            raise _AuthFailure("FAILURE_BAD_CREDENTIAL", "Login failed")
        return self._token_response(self._issue(user), "Login successful")

    def refresh(self, authorization: str | None) -> dict[str, Any]:
        token = self.token_of(authorization)
        if token is None:
            raise _AuthFailure("FAILURE_BAD_TOKEN", "Token is invalid or has expired")
        del self.tokens[token.value]
        return self._token_response(self._issue(token.user), "Token refreshed")

    def validate(self, authorization: str | None) -> dict[str, Any]:
        token = self.token_of(authorization)
        if token is None:
            raise _AuthFailure("FAILURE_BAD_TOKEN", "Token is invalid or has expired")
        return self._token_response(token, "Token validated")

    def _issue(self, user: str) -> _Token:
        token = _Token(
            value=secrets.token_urlsafe(32),
            token_id=str(uuid.uuid4()),
            refresh_token_id=str(uuid.uuid4()),
            user=user,
            expires_at=self.clock() + self.settings.token_ttl_seconds,
        )
        self.tokens[token.value] = token
        self.tokens_issued += 1
        return token

    def _token_response(self, token: _Token, message: str) -> dict[str, Any]:
        return {
            "meta": {"validationUrl": f"https://auth.anaplan.com{_VALIDATION_URL}"},
            "status": "SUCCESS",
            "statusMessage": message,
            "tokenInfo": {
                "expiresAt": int(token.expires_at * 1000),
                "tokenId": token.token_id,
                "tokenValue": token.value,
                "refreshTokenId": token.refresh_token_id,
            },
        }

    def token_of(self, authorization: str | None) -> _Token | None:
        """The live token an ``Authorization: AnaplanAuthToken {token}`` header carries, if any."""
        scheme, _, value = (authorization or "").partition(" ")
        if scheme != "AnaplanAuthToken" or not value.strip():
            return None
        token = self.tokens.get(value.strip())
        if token is None:
            return None
        if self.clock() >= token.expires_at:
            del self.tokens[token.value]
            return None
        return token

    def expire_tokens(self) -> int:
        """End every token now; how many were still live."""
        now = self.clock()
        live = sum(1 for token in self.tokens.values() if now < token.expires_at)
        self.tokens.clear()
        return live

    def admit(self, token: _Token) -> float | None:
        """Count one request of ``token``; the seconds until its next window when it is over budget."""
        now = self.clock()
        window = int(now // 60)
        current, count = self.windows.get(token.value, (window, 0))
        if current != window:
            count = 0
        if count >= self.settings.requests_per_minute:
            self.throttled += 1
            return (window + 1) * 60 - now
        self.windows[token.value] = (window, count + 1)
        return None

    # -- lookups ---------------------------------------------------------------------------------------

    def workspace(self, workspace_id: str) -> WorkspaceSpec:
        found = self.workspaces.get(workspace_id)
        if found is None:
            raise AnaplanError(404, f"Workspace {workspace_id} not found")
        return found

    def model(self, model_id: str, workspace_id: str | None = None) -> _Model:
        if workspace_id is not None:
            self.workspace(workspace_id)
        found = self.models.get(model_id)
        if found is None or (workspace_id is not None and found.spec.workspace_id != workspace_id):
            raise AnaplanError(404, f"Model {model_id} not found")
        return found

    def file(self, model: _Model, file_id: str) -> _File:
        found = model.files.get(file_id)
        if found is None:
            raise AnaplanError(404, f"File {file_id} not found")
        return found

    # -- rendering -------------------------------------------------------------------------------------

    def render_workspace(self, workspace: WorkspaceSpec, tenant_details: bool) -> dict[str, Any]:
        rendered: dict[str, Any] = {"id": workspace.id, "name": workspace.name, "active": workspace.active}
        if tenant_details:
            rendered["sizeAllowance"] = workspace.size_allowance
            rendered["currentSize"] = workspace.current_size
        return rendered

    def render_model(self, model: _Model, details: bool, single: bool = False) -> dict[str, Any]:
        spec = model.spec
        workspace = self.workspaces[spec.workspace_id]
        rendered: dict[str, Any] = {
            "id": spec.id,
            "activeState": spec.active_state,
            "name": spec.name,
            "currentWorkspaceId": workspace.id,
            "currentWorkspaceName": workspace.name,
            "modelUrl": f"https://us1a.app.anaplan.com/core/anaplan?selectedWorkspaceId={workspace.id}"
            f"&selectedModelId={spec.id}",
            "categoryValues": [dict(value) for value in spec.category_values],
            "isoCreationDate": spec.created,
            "lastSavedSerialNumber": 2_000_000 + len(model.tasks),
            "lastModifiedByUserGuid": DEV_USER_GUID,
            "lastModified": spec.last_modified,
        }
        if details:
            rendered["memoryUsage"] = spec.memory_usage
            if single:
                rendered["modelTransactionRunning"] = False
        return rendered

    # -- files -----------------------------------------------------------------------------------------

    def start_upload(self, model: _Model, file_id: str, chunk_count: int) -> _File:
        found = model.files.get(file_id)
        if found is None:
            # Anaplan makes a new private file named after the unknown id (clients warn about this).
            new_id = str(_FILE_ID_START + sum(1 for key in model.files if key.startswith("113")))
            while new_id in model.files:
                new_id = str(int(new_id) + 1)
            found = model.files[new_id] = _File(FileSpec(id=new_id, name=file_id))
        if found.id in model.exports:
            raise AnaplanError(400, f"File {file_id} is the output of an export and cannot be uploaded to")
        found.chunk_count = chunk_count
        found.chunks = {}
        found.completed = chunk_count >= 0
        return found

    def put_chunk(self, model: _Model, file_id: str, chunk: str, data: bytes) -> None:
        found = self.file(model, file_id)
        if found.id in model.exports:
            raise AnaplanError(400, f"File {file_id} is the output of an export and cannot be uploaded to")
        if not chunk.isdigit():
            raise AnaplanError(400, f"Invalid chunk id {chunk}")
        index = int(chunk)
        if found.chunk_count >= 0 and found.completed and index >= max(found.chunk_count, 1):
            raise AnaplanError(400, f"Chunk {index} is beyond the file's chunk count {found.chunk_count}")
        found.chunks[index] = data

    def put_whole(self, model: _Model, file_id: str, data: bytes) -> None:
        found = self.file(model, file_id)
        if found.id in model.exports:
            raise AnaplanError(400, f"File {file_id} is the output of an export and cannot be uploaded to")
        found.chunks = {0: data}
        found.chunk_count = 1
        found.completed = True

    def complete_upload(self, model: _Model, file_id: str) -> _File:
        found = self.file(model, file_id)
        found.chunk_count = len(found.chunks)
        found.completed = True
        return found

    # -- tasks -----------------------------------------------------------------------------------------

    def action(self, model: _Model, kind: str, action_id: str) -> ImportSpec | ExportSpec:
        actions: Mapping[str, ImportSpec | ExportSpec] = model.imports if kind == "imports" else model.exports
        found = actions.get(action_id)
        if found is None:
            raise AnaplanError(404, f"{'Import' if kind == 'imports' else 'Export'} {action_id} not found")
        return found

    def start_task(self, model: _Model, kind: str, action_id: str) -> _Task:
        spec = self.action(model, kind, action_id)
        self.settle(model)
        payload: bytes | None = None
        problem: str | None = None
        if isinstance(spec, ImportSpec):
            source = self.file(model, spec.file_id)
            if source.missing_chunks():
                problem = f"The upload of file {source.spec.name} is not complete."
            payload = source.content()
        task = _Task(
            id=uuid.uuid4().hex.upper(),
            kind=kind,
            action_id=action_id,
            created_ms=int(self.clock() * 1000),
            payload=payload,
            payload_problem=problem,
        )
        model.tasks[task.id] = task
        return task

    def task(self, model: _Model, kind: str, action_id: str, task_id: str) -> _Task:
        self.action(model, kind, action_id)
        found = model.tasks.get(task_id)
        if found is None or found.kind != kind or found.action_id != action_id:
            raise AnaplanError(404, f"Task {task_id} not found")
        return found

    def poll(self, model: _Model, task: _Task) -> dict[str, Any]:
        if not task.cancelled and task.polls < self.settings.task_polls_to_complete:
            task.polls += 1
        if self._reported_complete(task):
            self.settle(model, until=task)
        return self.render_task(task)

    def cancel(self, model: _Model, task: _Task) -> dict[str, Any]:
        if not task.done and not task.cancelled:
            task.cancelled = True
        return self.render_task(task)

    def _reported_complete(self, task: _Task) -> bool:
        return not task.cancelled and task.polls >= self.settings.task_polls_to_complete

    def state_of(self, task: _Task) -> str:
        if task.cancelled:
            return "CANCELLED"
        if self._reported_complete(task):
            return "COMPLETE"
        if task.polls == 0 or (task.polls == 1 and self.settings.task_polls_to_complete >= 3):
            return "NOT_STARTED"
        return "IN_PROGRESS"

    def render_task(self, task: _Task, summary: bool = False) -> dict[str, Any]:
        state = self.state_of(task)
        rendered: dict[str, Any] = {"taskId": task.id, "taskState": state, "creationTime": task.created_ms}
        if summary:
            return rendered
        progress = {"NOT_STARTED": 0.0, "CANCELLED": 0.0, "COMPLETE": 1.0}.get(
            state, task.polls / max(self.settings.task_polls_to_complete, 1)
        )
        steps = {"NOT_STARTED": "Queued.", "CANCELLED": "Cancelled.", "COMPLETE": "Complete."}
        rendered.update(
            {"type": "taskInformation", "currentStep": steps.get(state, "Running."), "progress": progress}
        )
        if state == "COMPLETE" and task.result is not None:
            rendered["result"] = task.result
        return rendered

    def settle(self, model: _Model, until: _Task | None = None) -> None:
        """Do the work of every task started before (and including) ``until``, in order; all when None."""
        for task in list(model.tasks.values()):
            if not task.done and not task.cancelled:
                self._run(model, task)
            if task is until:
                return

    def settle_all(self) -> None:
        for model in self.models.values():
            self.settle(model)

    def _run(self, model: _Model, task: _Task) -> None:
        task.done = True
        spec = self.action(model, task.kind, task.action_id)
        if isinstance(spec, ImportSpec):
            task.result, task.dump = self._import(spec, task)
        else:
            task.result = self._export(model, spec)

    # -- the revenue module ----------------------------------------------------------------------------

    def _import(self, spec: ImportSpec, task: _Task) -> tuple[dict[str, Any], bytes | None]:
        def failed(message: str) -> tuple[dict[str, Any], None]:
            detail = {"localMessageText": message, "occurrences": 1, "type": "importFailed", "values": []}
            return {
                "details": [detail],
                "failureDumpAvailable": False,
                "objectId": spec.id,
                "successful": False,
            }, None

        if task.payload_problem is not None or task.payload is None:
            return failed(task.payload_problem or "The import has no data source.")
        try:
            text = task.payload.decode("utf-8-sig")
        except UnicodeDecodeError:
            return failed("The file is not encoded as UTF-8.")
        reader = csv.reader(io.StringIO(text, newline=""))
        columns = [name.strip().lower() for name in next(reader, [])]
        missing = [column for column in IMPORT_COLUMNS if column not in columns]
        if missing:
            return failed(f"The file has no column {', '.join(repr(name) for name in missing)}.")
        position = {name: columns.index(name) for name in (*IMPORT_COLUMNS, "reference") if name in columns}
        rows: list[_Row] = []
        for line, values in enumerate(reader, start=2):
            if not any(value.strip() for value in values):
                continue
            padded = values + [""] * (len(columns) - len(values))
            row = _Row(line=line, values=values)
            row.project = padded[position["project"]].strip()
            row.month = padded[position["month"]].strip()
            row.currency = padded[position["currency"]].strip()
            row.version = padded[position["version"]].strip().lower()
            row.amount = padded[position["amount"]].strip()
            if "reference" in position:
                row.reference = padded[position["reference"]].strip() or None
            rows.append(row)
        return self._load(spec, columns, rows)

    def _row_error(self, row: _Row) -> str | None:
        if not row.project or len(row.project) > _MAX_PROJECT_CODE or not row.project.isprintable():
            return f"Invalid project code: {row.project!r}"
        if not _MONTH.fullmatch(row.month):
            return f"Invalid time period: {row.month!r}"
        if not self.settings.timescale_start <= row.month <= self.settings.timescale_end:
            return f"Time period {row.month} is outside the model's timescale"
        if row.version not in VERSIONS:
            return f"Invalid version: {row.version!r}"
        if not _CURRENCY.fullmatch(row.currency):
            return f"Invalid currency: {row.currency!r}"
        if not _PLAIN_DECIMAL.fullmatch(row.amount):
            return f"Invalid number: {row.amount!r}"
        try:
            Decimal(row.amount)
        except InvalidOperation:
            return f"Invalid number: {row.amount!r}"
        return None

    def _load(
        self, spec: ImportSpec, header: list[str], rows: list[_Row]
    ) -> tuple[dict[str, Any], bytes | None]:
        ignored = [row for row in rows if not row.amount]
        candidates = [row for row in rows if row.amount]
        failures: list[tuple[_Row, str]] = []
        valid: list[_Row] = []
        for row in candidates:
            error = self._row_error(row)
            if error is None:
                valid.append(row)
            else:
                failures.append((row, error))
        in_file = {(row.project, row.version) for row in valid}
        # A project has one currency: that of its cells of the versions this file leaves alone, else of its
        # first valid row in the file.
        currencies: dict[str, str] = {}
        for (project, version, _), cell in self.cells.items():
            if (project, version) not in in_file:
                currencies.setdefault(project, cell.currency)
        loaded: list[_Row] = []
        for row in valid:
            expected = currencies.setdefault(row.project, row.currency)
            if row.currency != expected:
                failures.append(
                    (row, f"Currency {row.currency} does not match the project's currency {expected}")
                )
            else:
                loaded.append(row)
        created = updated = 0
        before = set(self.cells)
        # As in Anaplan, an import writes the cells its rows name and no others: a month the file leaves out
        # keeps its figure. A number cell that is zero is an empty cell, so the store keeps no zero cells.
        for row in loaded:
            key = (row.project, row.version, row.month)
            if key in before:
                updated += 1
            else:
                created += 1
            if Decimal(row.amount) == 0:
                self.cells.pop(key, None)
            else:
                self.cells[key] = Cell(row.currency, row.amount, row.reference)
        successful = len(loaded)
        failed = len(failures)
        total = len(rows)
        summary = {
            "localMessageText": f"{MODULE_NAME}: {successful} ({created}/{updated}) rows successful, "
            f"{len(ignored)} ignored",
            "occurrences": 0,
            "type": "moduleRowsProcessed",
            "values": [
                "moduleName", MODULE_NAME,
                "successRowCount", str(successful),
                "successCreateCount", str(created),
                "successUpdateCount", str(updated),
                "failedCount", str(failed),
                "ignoredCount", str(len(ignored)),
                "totalRowCount", str(total),
            ],
        }  # fmt: skip
        dump: bytes | None = None
        if failures:
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["_Line_", *header, "_Error_1_"])
            for row, error in sorted(failures, key=lambda item: item[0].line):
                writer.writerow([row.line, *row.values, error])
            dump = out.getvalue().encode()
        result = {
            "details": [summary],
            "failureDumpAvailable": dump is not None,
            "objectId": spec.id,
            "successful": not failures,
        }
        return result, dump

    def forecast_rows(self) -> list[dict[str, str]]:
        """The forecast per project and month: the actual where there is one, else the baseline."""
        rows: list[dict[str, str]] = []
        projects = sorted({key[0] for key in self.cells})
        for project in projects:
            months = sorted({key[2] for key in self.cells if key[0] == project})
            for month in months:
                actual = self.cells.get((project, "actual", month))
                cell = actual or self.cells[(project, "baseline", month)]
                rows.append(
                    {
                        "project": project,
                        "month": month,
                        "currency": cell.currency,
                        "amount": cell.amount,
                        "source": "actual" if actual is not None else "baseline",
                    }
                )
        return rows

    def _export(self, model: _Model, spec: ExportSpec) -> dict[str, Any]:
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=[column.header for column in spec.columns], lineterminator="\n"
        )
        writer.writeheader()
        rows = self.forecast_rows()
        writer.writerows(rows)
        content = out.getvalue().encode()
        size = max(1, self.settings.export_chunk_bytes)
        output = model.files[spec.id]
        output.chunks = {
            index: content[start : start + size] for index, start in enumerate(range(0, len(content), size))
        }
        output.chunk_count = len(output.chunks)
        output.completed = True
        detail = {
            "localMessageText": f"{spec.name}: {len(rows)} rows exported",
            "occurrences": 0,
            "type": "exportSucceeded",
            "values": ["exportName", spec.name, "rowCount", str(len(rows))],
        }
        return {"details": [detail], "failureDumpAvailable": False, "objectId": spec.id, "successful": True}

    # -- admin -----------------------------------------------------------------------------------------

    def stored(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``GET /__sandbox/records/{type}``'s stores, with every started task's work done."""
        self.settle_all()
        revenue = {
            f"{project}|{version}|{month}": {
                "project": project,
                "version": version,
                "month": month,
                "currency": cell.currency,
                "amount": cell.amount,
                "reference": cell.reference,
            }
            for (project, version, month), cell in sorted(self.cells.items())
        }
        files: dict[str, dict[str, Any]] = {}
        tasks: dict[str, dict[str, Any]] = {}
        for model in self.models.values():
            for item in model.files.values():
                files[f"{model.spec.id}/{item.id}"] = {
                    **item.render(),
                    "modelId": model.spec.id,
                    "chunksReceived": len(item.chunks),
                    "content": item.content().decode("utf-8", "replace"),
                }
            for task in model.tasks.values():
                tasks[task.id] = {
                    **self.render_task(task),
                    "modelId": model.spec.id,
                    "kind": task.kind,
                    "actionId": task.action_id,
                    "polls": task.polls,
                    "done": task.done,
                }
        return {"revenue": revenue, "files": files, "tasks": tasks}


# Handlers receive the tenant through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[AnaplanSandbox]


# ---------------------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------------------


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(payload), status_code=status, media_type=_JSON, headers=headers)


def _binary(content: bytes) -> Response[bytes]:
    return Response(content, media_type=_BINARY)


def _base(request: Request[Any, Any, Any]) -> str:
    """Scheme, host and mount prefix: what every absolute URL the sandbox hands out starts with."""
    return str(request.base_url).rstrip("/")


def _object(request: Request[Any, Any, Any], key: str, value: Any, schema: str) -> Response[bytes]:
    meta = {"schema": f"{_base(request)}{API_PREFIX}/objects/{schema}"}
    return _json({"meta": meta, "status": _SUCCESS, key: value})


def _int_param(request: Request[Any, Any, Any], name: str, default: int, minimum: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise AnaplanError(400, f"Invalid value for parameter {name}: {text}") from None
    if value < minimum:
        raise AnaplanError(400, f"Invalid value for parameter {name}: {text}")
    return value


def _sorted(request: Request[Any, Any, Any], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sort = request.query_params.get("sort")
    if not sort:
        return items
    descending = sort.startswith("-")
    name = sort.lstrip("+- ")
    present = [item for item in items if item.get(name) is not None]
    absent = [item for item in items if item.get(name) is None]
    return sorted(present, key=lambda item: str(item[name]).lower(), reverse=descending) + absent


def _page(
    request: Request[Any, Any, Any],
    sandbox: AnaplanSandbox,
    key: str,
    items: list[dict[str, Any]],
    schema: str,
) -> Response[bytes]:
    limit = min(
        _int_param(request, "limit", sandbox.settings.max_page_size, 1), sandbox.settings.max_page_size
    )
    offset = _int_param(request, "offset", 0, 0)
    ordered = _sorted(request, items)
    page = ordered[offset : offset + limit]
    paging: dict[str, Any] = {"currentPageSize": len(page), "offset": offset, "totalSize": len(ordered)}
    url = f"{_base(request)}{relative_path(cast('Scope', request.scope))}"
    others = [
        (name, value) for name, value in request.query_params.multi_items() if name not in ("limit", "offset")
    ]
    if offset + len(page) < len(ordered):
        paging["next"] = f"{url}?{urlencode([*others, ('limit', limit), ('offset', offset + limit)])}"
    if offset > 0:
        previous = max(0, offset - limit)
        paging["previous"] = f"{url}?{urlencode([*others, ('limit', limit), ('offset', previous)])}"
    meta = {"paging": paging, "schema": f"{_base(request)}{API_PREFIX}/objects/{schema}"}
    return _json({"meta": meta, "status": _SUCCESS, key: page})


def _flag(request: Request[Any, Any, Any], name: str) -> bool:
    return (request.query_params.get(name) or "").lower() == "true"


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


async def _json_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        if json_too_deep(raw):  # the parser would raise RecursionError
            raise msgspec.DecodeError("nested too deep")
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise AnaplanError(400, "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise AnaplanError(400, "The request body must be a JSON object")
    return body


async def _chunk_body(request: Request[Any, Any, Any]) -> bytes:
    media = request.headers.get("content-type", _BINARY).split(";", 1)[0].strip().lower()
    raw = await request.body()
    if media in _GZIP_TYPES:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError):
            raise AnaplanError(400, "The chunk is not valid gzip data") from None
    if media != _BINARY:
        raise AnaplanError(415, f"Unsupported content type {media}; use application/octet-stream")
    return raw


# ---------------------------------------------------------------------------------------------------------
# Authentication service
# ---------------------------------------------------------------------------------------------------------


def _auth_answer(action: Callable[[], dict[str, Any]], status: int = 200) -> Response[bytes]:
    try:
        return _json(action(), status)
    except _AuthFailure as failure:
        return _json({"status": failure.status, "statusMessage": failure.message}, 401)


# Anaplan answers a login and a refresh with 201 Created (unverified; clients only check for a 2xx).
@post("/token/authenticate", status_code=201)
async def authenticate(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    return _auth_answer(lambda: sandbox.authenticate(request.headers.get("authorization")), 201)


@post("/token/refresh", status_code=201)
async def refresh_token(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    return _auth_answer(lambda: sandbox.refresh(request.headers.get("authorization")), 201)


@get(_VALIDATION_URL)
async def validate_token(request: Request[Any, Any, Any], sandbox: _Sandbox) -> Response[bytes]:
    return _auth_answer(lambda: sandbox.validate(request.headers.get("authorization")))


# ---------------------------------------------------------------------------------------------------------
# Integration API v2: workspaces and models
# ---------------------------------------------------------------------------------------------------------

_WS = f"{API_PREFIX}/workspaces"
_MODEL = f"{_WS}/{{workspace_id:str}}/models/{{model_id:str}}"


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


# ---------------------------------------------------------------------------------------------------------
# Integration API v2: a model's files
# ---------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------
# Integration API v2: actions and their tasks
# ---------------------------------------------------------------------------------------------------------


def _render_import(spec: ImportSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": spec.name,
        "importDataSourceId": spec.file_id,
        "importType": spec.import_type,
    }


def _render_export(spec: ExportSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": spec.name,
        "exportType": spec.export_type,
        "exportFormat": spec.export_format,
        "encoding": spec.encoding,
        "layout": spec.export_type,
    }


@get(f"{_MODEL}/imports")
async def list_imports(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], model_id: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    model = sandbox.model(model_id, workspace_id)
    return _page(
        request, sandbox, "imports", [_render_import(item) for item in model.imports.values()], "import"
    )


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


# ---------------------------------------------------------------------------------------------------------
# Sandbox administration
# ---------------------------------------------------------------------------------------------------------


@post(f"{ADMIN_PREFIX}/reset", status_code=204)
async def reset(sandbox: _Sandbox) -> None:
    sandbox.reset()


@post(f"{ADMIN_PREFIX}/tokens/expire", status_code=200)
async def expire_tokens(sandbox: _Sandbox) -> Response[bytes]:
    return _json({"expired": sandbox.expire_tokens()})


@get(f"{ADMIN_PREFIX}/stats")
async def stats(sandbox: _Sandbox) -> Response[bytes]:
    return _json(
        {
            "requests_per_minute": sandbox.settings.requests_per_minute,
            "tokens_issued": sandbox.tokens_issued,
            "tokens_live": len(sandbox.tokens),
            "throttled": sandbox.throttled,
            "tasks": sum(len(model.tasks) for model in sandbox.models.values()),
            "requests": msgspec.to_builtins(list(sandbox.request_log)),
        }
    )


@get(ADMIN_PREFIX + RECORDS_PATH)
async def stored_records(
    request: Request[Any, Any, Any], record_type: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return records_response(sandbox.stored(), record_type, request.query_params.multi_items())


# ---------------------------------------------------------------------------------------------------------
# ASGI layers around the Litestar router
# ---------------------------------------------------------------------------------------------------------


async def _send_error(send: Send, error: AnaplanError) -> None:
    body = msgspec.json.encode(error.body())
    headers = [(b"content-type", _JSON.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


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

    def provide_sandbox() -> AnaplanSandbox:
        return sandbox

    app = Litestar(
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
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False)},
        exception_handlers={
            AnaplanError: _on_anaplan_error,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        openapi_config=None,
        request_max_body_size=_MAX_BODY,
        state=State({"sandbox": sandbox, "faults": sandbox.faults}),
    )
    # Faults, auth and the request budget must see every request, routed or not, so they wrap Litestar's own
    # handler (inside Litestar.__call__, which still owns lifespan and scope setup).
    router = cast("ASGIApp", app.asgi_handler)
    wrapped = RequestLog(
        with_faults(_ApiGate(router, sandbox), sandbox.faults, ADMIN_PREFIX),
        lambda entry: sandbox.request_log.append(entry),
        ADMIN_PREFIX,
    )
    app.asgi_handler = cast("LitestarASGIApp", wrapped)
    return app
