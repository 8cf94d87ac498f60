"""One sandbox tenant's state: its workspaces and models, their files and tasks, the revenue module's
cells (`sandboxes.anaplan.revenue`) and the tokens (`sandboxes.anaplan.tokens`).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import msgspec
from litestar.di import NamedDependency

from sandboxes.anaplan.data import (
    DEV_PASSWORD,
    DEV_USER,
    DEV_USER_GUID,
    TIMESCALE_END,
    TIMESCALE_START,
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
from sandboxes.anaplan.revenue import RevenueModule
from sandboxes.anaplan.tokens import TokenService, _Token
from sandboxes.anaplan.wire import AnaplanError
from sandboxes.faults import FaultInjector
from sandboxes.request_log import RequestLogEntry

__all__ = ["AnaplanSandbox", "AnaplanSandboxSettings"]


_FILE_ID_START = 113_000_000_000


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
    # Every task ever started here, dropped or not (the model's serial number counts them).
    tasks_started: int = 0


# Finished tasks a model keeps, the newest: a memory bound of this sandbox, not documented Anaplan behaviour
# (no Anaplan source found says how long a task stays readable). A client polls the task it just started to
# completion, as the adapter and anaplan-sdk do, so it never meets the bound; a thousand imports later nobody
# asks for the old one. A task read after it was dropped answers as an unknown task does.
TASKS_KEPT = 1000


class _DurableState(msgspec.Struct, kw_only=True):
    """What a restart keeps (`sandboxes.persistence`): the models with their files and tasks, and the
    revenue module's cells.

    A task's work is done lazily, on a read, and that read saves nothing; but the work is fully decided by
    what the request that started the task saved (the import's payload, the task's place in the model's
    order), so after a restart the same work is done again with the same result."""

    models: dict[str, _Model]
    cells: list[tuple[CellKey, Cell]]


class AnaplanSandbox(TokenService, RevenueModule):
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
            "lastSavedSerialNumber": 2_000_000 + max(model.tasks_started, len(model.tasks)),
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
        model.tasks_started += 1
        self._forget_finished_tasks(model)
        return task

    def _forget_finished_tasks(self, model: _Model) -> None:
        # The oldest finished tasks go past TASKS_KEPT, so the tasks (each with its import's file, its
        # result and its failed rows) and the durable state saved on every write do not grow with every
        # import ever run. A task not yet done stays, however many there are: its client is polling it.
        excess = len(model.tasks) - TASKS_KEPT
        for task_id, task in list(model.tasks.items()):
            if excess <= 0:
                return
            if task.done or task.cancelled:
                del model.tasks[task_id]
                excess -= 1

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
