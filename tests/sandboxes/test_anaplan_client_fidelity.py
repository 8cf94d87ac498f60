"""Fidelity: the unmodified public client ``anaplan-sdk`` works against the Anaplan sandbox.

anaplan-sdk calls Anaplan's fixed hosts (``auth.anaplan.com``, ``api.anaplan.com``) and passes extra keyword
arguments to its ``httpx.AsyncClient``, so it is pointed at the sandbox with an httpx transport that rewrites
both hosts to the sandbox (served in process through ``httpx.ASGITransport``). Its first login would go
through a private ``httpx.Client`` of its own that no transport reaches, so it is given a stale token with
the user and password: the API answers 401, and the SDK's own auth flow logs in through the transport and
repeats the call, exactly as when a real token expires. Everything else (paths, paging by
``meta.paging``, gzip chunk uploads, polling task state, reading the task result, downloading the export)
is the library's own code.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandboxes.anaplan import (
    DEV_PASSWORD,
    DEV_USER,
    AnaplanSandbox,
    AnaplanSandboxSettings,
    create_anaplan_sandbox,
)
from sandboxes.anaplan.data import (
    ACTUALS_FILE_ID,
    ACTUALS_IMPORT_ID,
    BASELINE_FILE_ID,
    BASELINE_IMPORT_ID,
    DEMO_PROJECT_ID,
    FORECAST_EXPORT_ID,
    REVENUE_MODEL_ID,
    WORKSPACE_ID,
)

anaplan_sdk = pytest.importorskip("anaplan_sdk")

from anaplan_sdk import AsyncClient  # noqa: E402 - only importable once importorskip has passed
from anaplan_sdk.exceptions import AnaplanActionError, AnaplanException  # noqa: E402

SANDBOX_HOST = "anaplan.sandbox.test"
BASELINE = "project,month,currency,version,amount,reference\n" + "".join(
    f"OPP-42,2026-{month:02d},USD,baseline,{month * 1000}.00,opp-42:v1\n" for month in range(1, 13)
)


class RewriteHosts(httpx.AsyncBaseTransport):
    """Sends Anaplan's two hosts to the sandbox app, which serves both at its root."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.hosts: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.url.host)
        if request.url.host in ("auth.anaplan.com", "api.anaplan.com"):
            request.url = request.url.copy_with(scheme="http", host=SANDBOX_HOST)
            request.headers["Host"] = SANDBOX_HOST
        return await self._inner.handle_async_request(request)


class Sdk:
    def __init__(self, app: Any, transport: RewriteHosts, client: Any) -> None:
        self.app = app
        self.transport = transport
        self.client = client

    @property
    def sandbox(self) -> AnaplanSandbox:
        sandbox: AnaplanSandbox = self.app.state.sandbox
        return sandbox


def make_client(app: Any, transport: RewriteHosts, **options: Any) -> Any:
    defaults: dict[str, Any] = {
        "workspace_id": WORKSPACE_ID,
        "model_id": REVENUE_MODEL_ID,
        "user_email": DEV_USER,
        "password": DEV_PASSWORD,
        "token": "stale-token",
        "status_poll_delay": 0,
        "backoff": 0,
        "transport": transport,
    }
    return AsyncClient(**{**defaults, **options})


@pytest.fixture
def sdk() -> Sdk:
    # Small pages and chunks, so the SDK has to page and upload in several chunks.
    app = create_anaplan_sandbox(AnaplanSandboxSettings(max_page_size=2))
    transport = RewriteHosts(app)
    return Sdk(app, transport, make_client(app, transport, page_size=1, upload_chunk_size=100))


async def test_it_logs_in_and_lists_workspaces_and_models_page_by_page(sdk: Sdk) -> None:
    workspaces = await sdk.client.get_workspaces()
    assert [w.name for w in workspaces] == ["Stratum FP&A", "Stratum Archive"]
    assert workspaces[0].size_allowance > workspaces[0].current_size
    # The stale token was refused, the SDK logged in on the (rewritten) auth host and went on.
    assert "auth.anaplan.com" in sdk.transport.hosts
    assert sdk.sandbox.tokens_issued == 1
    models = await sdk.client.get_models()
    assert [m.name for m in models] == ["Revenue Planning", "Headcount Planning", "Revenue Planning FY24"]
    in_workspace = await sdk.client.get_models(only_in_workspace=True)
    assert [m.id for m in in_workspace] == [models[0].id, models[1].id]
    model = await sdk.client.get_model()
    assert model.workspace_name == "Stratum FP&A"
    assert model.model_transaction_running is False
    workspace = await sdk.client.get_workspace()
    assert workspace.id == WORKSPACE_ID


async def test_it_reads_the_models_files_imports_and_exports(sdk: Sdk) -> None:
    files = await sdk.client.get_files()
    assert [f.id for f in files] == [int(BASELINE_FILE_ID), int(ACTUALS_FILE_ID), int(FORECAST_EXPORT_ID)]
    imports = await sdk.client.get_imports(sort_by="name")
    assert [(i.name, i.file_id) for i in imports] == [
        ("Import Revenue Actuals", int(ACTUALS_FILE_ID)),
        ("Import Revenue Baseline", int(BASELINE_FILE_ID)),
    ]
    assert all(i.type == "MODULE_DATA" for i in imports)
    exports = await sdk.client.get_exports()
    assert [(e.name, e.format) for e in exports] == [("Export Forecast", "text/csv")]
    assert await sdk.client.get_actions() == []
    assert await sdk.client.get_processes() == []


async def test_it_uploads_a_file_in_chunks_and_runs_the_import_to_completion(sdk: Sdk) -> None:
    task = await sdk.client.upload_and_import(int(BASELINE_FILE_ID), BASELINE, int(BASELINE_IMPORT_ID))
    assert task.task_state == "COMPLETE"
    assert task.result.successful is True
    values = task.result.details[0].values
    counts = dict(zip(values[::2], values[1::2], strict=True))
    assert counts["successRowCount"] == "12"
    # The file went up gzip-compressed in several chunks and landed whole.
    uploaded = sdk.sandbox.models[REVENUE_MODEL_ID].files[BASELINE_FILE_ID]
    assert uploaded.chunk_count == len(uploaded.chunks) > 1
    assert uploaded.content().decode() == BASELINE
    landed = {
        month: (cell.currency, cell.amount, cell.reference)
        for (project, version, month), cell in sdk.sandbox.cells.items()
        if project == "OPP-42" and version == "baseline"
    }
    assert landed["2026-01"] == ("USD", "1000.00", "opp-42:v1")
    assert len(landed) == 12
    summaries = await sdk.client.get_task_summaries(int(BASELINE_IMPORT_ID))
    assert [s.id for s in summaries] == [task.id]


async def test_a_streamed_upload_completes_and_imports(sdk: Sdk) -> None:
    rows = ["project,month,currency,version,amount\n", "OPP-43,2026-01,USD,actual,10.00\n"]
    await sdk.client.upload_file_stream(int(ACTUALS_FILE_ID), iter(rows))
    task = await sdk.client.run_action(int(ACTUALS_IMPORT_ID))
    assert task.result.successful is True
    assert sdk.sandbox.cells[("OPP-43", "actual", "2026-01")].amount == "10.00"


async def test_the_forecast_export_downloads_with_actuals_then_baseline(sdk: Sdk) -> None:
    content = await sdk.client.export_and_download(int(FORECAST_EXPORT_ID))
    lines = content.decode().splitlines()
    assert lines[0] == "project,month,currency,amount,source"
    assert lines[3] == f"{DEMO_PROJECT_ID},2026-03,USD,49875.25,actual"
    assert lines[4] == f"{DEMO_PROJECT_ID},2026-04,USD,55000.00,baseline"


async def test_the_exports_metadata_describes_the_file_the_sdk_downloads(sdk: Sdk) -> None:
    # anaplan-sdk does not read an export's metadata; Anaplan's own client (Anaplan Connect) does, from
    # GET .../exports/{id} -> exportMetadata. Read it on the same (rewritten) API host the SDK uses.
    content = await sdk.client.export_and_download(int(FORECAST_EXPORT_ID))
    async with httpx.AsyncClient(transport=sdk.transport) as plain:
        login = await plain.post("https://auth.anaplan.com/token/authenticate", auth=(DEV_USER, DEV_PASSWORD))
        token = login.json()["tokenInfo"]["tokenValue"]
        answer = await plain.get(
            f"https://api.anaplan.com/2/0/workspaces/{WORKSPACE_ID}/models/{REVENUE_MODEL_ID}"
            f"/exports/{FORECAST_EXPORT_ID}",
            headers={"Authorization": f"AnaplanAuthToken {token}"},
        )
    assert answer.status_code == 200
    metadata = answer.json()["exportMetadata"]
    lines = content.decode(metadata["encoding"]).splitlines()
    assert lines[0].split(metadata["separator"]) == metadata["headerNames"]
    assert metadata["columnCount"] == len(metadata["headerNames"]) == len(metadata["dataTypes"])
    assert metadata["rowCount"] == len(lines) - 1
    assert metadata["exportFormat"] == "text/csv"


async def test_an_import_with_refused_rows_is_an_action_error_to_the_sdk(sdk: Sdk) -> None:
    bad = (
        "project,month,currency,version,amount\n"
        "OPP-44,2026-01,USD,baseline,1.00\n"
        "OPP-44,1999-01,USD,baseline,1\n"
    )
    with pytest.raises(AnaplanActionError):
        await sdk.client.upload_and_import(int(BASELINE_FILE_ID), bad, int(BASELINE_IMPORT_ID))
    assert ("OPP-44", "baseline", "2026-01") in sdk.sandbox.cells
    assert ("OPP-44", "baseline", "1999-01") not in sdk.sandbox.cells


async def test_it_retries_a_429_and_gives_up_when_the_limit_does_not_lift() -> None:
    app = create_anaplan_sandbox(AnaplanSandboxSettings(requests_per_minute=1))
    app.state.sandbox.clock = lambda: 2_000_000_000.0
    client = make_client(app, RewriteHosts(app), retry_count=2)
    assert len(await client.get_imports()) == 2
    with pytest.raises(AnaplanException, match="Rate limit exceeded"):
        await client.get_exports()
    refused = [entry for entry in app.state.sandbox.request_log if entry.status == 429]
    assert [entry.path.rsplit("/", 1)[-1] for entry in refused] == ["exports", "exports"]
