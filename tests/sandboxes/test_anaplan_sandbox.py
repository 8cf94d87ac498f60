"""The Anaplan sandbox on the wire: what an Anaplan client would notice, plus the revenue model's promises."""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
    ARCHIVE_WORKSPACE_ID,
    ARCHIVED_MODEL_ID,
    BASELINE_FILE_ID,
    BASELINE_IMPORT_ID,
    DEMO_PROJECT_ID,
    FORECAST_EXPORT_ID,
    HEADCOUNT_MODEL_ID,
    REVENUE_MODEL_ID,
    WORKSPACE_ID,
)
from sandboxes.faults import Receive, Scope, Send

ROOT = "http://anaplan.test"
MODEL = f"/2/0/workspaces/{WORKSPACE_ID}/models/{REVENUE_MODEL_ID}"
JSON = "application/json;charset=UTF-8"
HEADER = "project,month,currency,version,amount\n"
# A minute boundary plus 10 s, after the wall clock: 2033-05-18T03:33:20Z is 2_000_000_000.
T0 = 2_000_000_000.0 - 20 + 10


def basic(user: str = DEV_USER, password: str = DEV_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Tenant:
    """A client on one sandbox app, logged in as the development user, with the app at hand."""

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app
        self.token = ""

    @property
    def sandbox(self) -> AnaplanSandbox:
        sandbox: AnaplanSandbox = self.app.state.sandbox
        return sandbox

    async def login(self) -> str:
        response = await self.client.post("/token/authenticate", headers=basic())
        assert response.status_code == 201, response.text
        self.token = response.json()["tokenInfo"]["tokenValue"]
        return self.token

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"AnaplanAuthToken {self.token}", **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.api(method, path, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == JSON
        body: dict[str, Any] = response.json()
        assert body["status"] == {"code": 200, "message": "Success"}
        return body

    async def upload(self, file_id: str, content: str) -> None:
        await self.ok("POST", f"{MODEL}/files/{file_id}", json={"chunkCount": 1})
        response = await self.api(
            "PUT",
            f"{MODEL}/files/{file_id}/chunks/0",
            content=content.encode(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 204, response.text

    async def run(self, kind: str, action_id: str) -> dict[str, Any]:
        """Start a task and poll it to completion; the completed task."""
        started = await self.ok("POST", f"{MODEL}/{kind}/{action_id}/tasks", json={"localeName": "en_US"})
        task_id = started["task"]["taskId"]
        for _ in range(10):
            task: dict[str, Any] = (await self.ok("GET", f"{MODEL}/{kind}/{action_id}/tasks/{task_id}"))[
                "task"
            ]
            if task["taskState"] == "COMPLETE":
                return task
        raise AssertionError("the task never completed")

    async def records(self, record_type: str, **where: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/__sandbox/records/{record_type}", params=where)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@asynccontextmanager
async def tenant(login: bool = True, **settings: Any) -> AsyncIterator[Tenant]:
    app = create_anaplan_sandbox(AnaplanSandboxSettings(**settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ROOT) as client:
        account = Tenant(client, app)
        if login:
            await account.login()
        yield account


def cells(account: Tenant, project: str, version: str) -> dict[str, str]:
    return {
        month: cell.amount
        for (cell_project, cell_version, month), cell in account.sandbox.cells.items()
        if cell_project == project and cell_version == version
    }


# ---------------------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------------------


async def test_basic_login_answers_a_token_in_anaplans_shape() -> None:
    async with tenant(login=False) as account:
        account.sandbox.clock = lambda: T0
        response = await account.client.post("/token/authenticate", headers=basic())
        assert response.status_code == 201
        body = response.json()
        assert body["status"] == "SUCCESS"
        assert body["statusMessage"] == "Login successful"
        info = body["tokenInfo"]
        assert set(info) == {"expiresAt", "tokenId", "tokenValue", "refreshTokenId"}
        assert info["expiresAt"] == int((T0 + 35 * 60) * 1000)
        account.token = info["tokenValue"]
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        basic(password="wrong"),
        basic(user="nobody@example.com"),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "CACertificate MIIB"},
        {},
    ],
)
async def test_bad_credentials_are_refused_with_401(headers: dict[str, str]) -> None:
    async with tenant(login=False) as account:
        response = await account.client.post("/token/authenticate", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"status": "FAILURE_BAD_CREDENTIAL", "statusMessage": "Login failed"}
        assert account.sandbox.tokens == {}


async def test_refresh_replaces_the_token_and_validate_reads_it() -> None:
    async with tenant() as account:
        old = account.token
        auth = {"Authorization": f"AnaplanAuthToken {old}"}
        refreshed = await account.client.post("/token/refresh", headers=auth)
        assert refreshed.status_code == 201
        assert refreshed.json()["statusMessage"] == "Token refreshed"
        new = refreshed.json()["tokenInfo"]["tokenValue"]
        assert new != old
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 401
        account.token = new
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 200
        valid = await account.client.get(
            "/token/validate", headers={"Authorization": f"AnaplanAuthToken {new}"}
        )
        assert valid.status_code == 200
        assert valid.json()["tokenInfo"]["tokenValue"] == new
        again = await account.client.post("/token/refresh", headers=auth)
        assert again.status_code == 401
        assert again.json()["status"] == "FAILURE_BAD_TOKEN"


@pytest.mark.parametrize(
    "authorization", [None, "Bearer {token}", "AnaplanAuthToken nope", "AnaplanAuthToken "]
)
async def test_the_api_needs_a_live_anaplan_token(authorization: str | None) -> None:
    async with tenant() as account:
        headers = (
            {} if authorization is None else {"Authorization": authorization.format(token=account.token)}
        )
        for path in ("/2/0/workspaces", "/2/0/no/such/route"):
            response = await account.client.get(path, headers=headers)
            assert response.status_code == 401
            assert response.headers["content-type"] == JSON
            assert response.json()["status"]["code"] == 401


async def test_a_token_expires_after_35_minutes_and_when_the_admin_says_so() -> None:
    async with tenant() as account:
        account.sandbox.clock = lambda: T0
        await account.login()
        account.sandbox.clock = lambda: T0 + 35 * 60 - 1
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 200
        account.sandbox.clock = lambda: T0 + 35 * 60
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 401
        await account.login()
        expired = await account.client.post("/__sandbox/tokens/expire")
        assert expired.json() == {"expired": 1}
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 401


# ---------------------------------------------------------------------------------------------------------
# Workspaces, models and lists
# ---------------------------------------------------------------------------------------------------------


async def test_workspaces_with_and_without_tenant_details() -> None:
    async with tenant() as account:
        plain = await account.ok("GET", "/2/0/workspaces")
        assert [w["name"] for w in plain["workspaces"]] == ["Stratum FP&A", "Stratum Archive"]
        assert set(plain["workspaces"][0]) == {"id", "name", "active"}
        detailed = await account.ok("GET", "/2/0/workspaces", params={"tenantDetails": "true"})
        assert {"sizeAllowance", "currentSize"} <= set(detailed["workspaces"][0])
        one = await account.ok("GET", f"/2/0/workspaces/{ARCHIVE_WORKSPACE_ID}")
        assert one["workspace"]["active"] is False
        assert (await account.api("GET", "/2/0/workspaces/unknown")).status_code == 404


async def test_lists_page_by_limit_and_offset_with_meta_paging() -> None:
    async with tenant() as account:
        first = await account.ok("GET", "/2/0/models", params={"limit": 2})
        paging = first["meta"]["paging"]
        assert paging["currentPageSize"] == 2
        assert paging["offset"] == 0
        assert paging["totalSize"] == 3
        assert "previous" not in paging
        assert paging["next"] == f"{ROOT}/2/0/models?limit=2&offset=2"
        second = await account.ok("GET", "/2/0/models", params={"limit": 2, "offset": 2})
        assert second["meta"]["paging"]["currentPageSize"] == 1
        assert "next" not in second["meta"]["paging"]
        assert second["meta"]["paging"]["previous"] == f"{ROOT}/2/0/models?limit=2&offset=0"
        ids = [m["id"] for m in first["models"] + second["models"]]
        assert ids == [REVENUE_MODEL_ID, HEADCOUNT_MODEL_ID, ARCHIVED_MODEL_ID]
        by_name = await account.ok("GET", "/2/0/models", params={"sort": "-name"})
        assert [m["name"] for m in by_name["models"]] == [
            "Revenue Planning FY24",
            "Revenue Planning",
            "Headcount Planning",
        ]
        for bad in ("0", "-1", "many"):
            response = await account.api("GET", "/2/0/models", params={"limit": bad})
            assert response.status_code == 400
            assert response.json()["status"]["code"] == 400


async def test_the_page_size_is_clamped_to_the_tenants_maximum() -> None:
    async with tenant(max_page_size=1) as account:
        body = await account.ok("GET", "/2/0/workspaces", params={"limit": 5000})
        assert body["meta"]["paging"] == {
            "currentPageSize": 1,
            "offset": 0,
            "totalSize": 2,
            "next": f"{ROOT}/2/0/workspaces?limit=1&offset=1",
        }


async def test_models_per_workspace_and_one_model_with_details() -> None:
    async with tenant() as account:
        listed = await account.ok(
            "GET", f"/2/0/workspaces/{WORKSPACE_ID}/models", params={"modelDetails": "true"}
        )
        assert [m["name"] for m in listed["models"]] == ["Revenue Planning", "Headcount Planning"]
        assert "memoryUsage" in listed["models"][0]
        model = (await account.ok("GET", MODEL, params={"modelDetails": "true"}))["model"]
        assert model["currentWorkspaceName"] == "Stratum FP&A"
        assert model["modelTransactionRunning"] is False
        wrong = await account.api("GET", f"/2/0/workspaces/{ARCHIVE_WORKSPACE_ID}/models/{REVENUE_MODEL_ID}")
        assert wrong.status_code == 404


async def test_the_revenue_models_files_imports_and_exports() -> None:
    async with tenant() as account:
        files = (await account.ok("GET", f"{MODEL}/files"))["files"]
        assert [(f["id"], f["name"]) for f in files] == [
            (BASELINE_FILE_ID, "revenue_baseline.csv"),
            (ACTUALS_FILE_ID, "revenue_actuals.csv"),
            (FORECAST_EXPORT_ID, "Export Forecast.csv"),
        ]
        imports = (await account.ok("GET", f"{MODEL}/imports"))["imports"]
        assert imports == [
            {
                "id": BASELINE_IMPORT_ID,
                "name": "Import Revenue Baseline",
                "importDataSourceId": BASELINE_FILE_ID,
                "importType": "MODULE_DATA",
            },
            {
                "id": ACTUALS_IMPORT_ID,
                "name": "Import Revenue Actuals",
                "importDataSourceId": ACTUALS_FILE_ID,
                "importType": "MODULE_DATA",
            },
        ]
        exports = (await account.ok("GET", f"{MODEL}/exports"))["exports"]
        assert exports[0]["name"] == "Export Forecast"
        assert (await account.ok("GET", f"{MODEL}/actions"))["meta"]["paging"]["totalSize"] == 0
        assert (await account.ok("GET", f"{MODEL}/processes"))["processes"] == []


# ---------------------------------------------------------------------------------------------------------
# Files in chunks
# ---------------------------------------------------------------------------------------------------------


async def test_a_file_uploads_in_chunks_plain_or_gzip() -> None:
    async with tenant() as account:
        started = await account.ok("POST", f"{MODEL}/files/{BASELINE_FILE_ID}", json={"chunkCount": 2})
        assert started["file"]["chunkCount"] == 2
        first = await account.api(
            "PUT",
            f"{MODEL}/files/{BASELINE_FILE_ID}/chunks/0",
            content=b"hello, ",
            headers={"Content-Type": "application/octet-stream"},
        )
        second = await account.api(
            "PUT",
            f"{MODEL}/files/{BASELINE_FILE_ID}/chunks/1",
            content=gzip.compress(b"world"),
            headers={"Content-Type": "application/x-gzip"},
        )
        assert (first.status_code, second.status_code) == (204, 204)
        whole = await account.api("GET", f"{MODEL}/files/{BASELINE_FILE_ID}")
        assert whole.content == b"hello, world"
        assert whole.headers["content-type"] == "application/octet-stream"
        chunks = await account.ok("GET", f"{MODEL}/files/{BASELINE_FILE_ID}/chunks")
        assert chunks["chunks"] == [{"id": "0", "name": "Chunk 0"}, {"id": "1", "name": "Chunk 1"}]
        one = await account.api("GET", f"{MODEL}/files/{BASELINE_FILE_ID}/chunks/1")
        assert one.content == b"world"
        beyond = await account.api(
            "PUT",
            f"{MODEL}/files/{BASELINE_FILE_ID}/chunks/2",
            content=b"!",
            headers={"Content-Type": "application/octet-stream"},
        )
        assert beyond.status_code == 400


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [("text/csv", b"a,b", 415), ("application/x-gzip", b"not gzip", 400)],
)
async def test_a_chunk_must_be_bytes_or_gzip(content_type: str, body: bytes, status: int) -> None:
    async with tenant() as account:
        await account.ok("POST", f"{MODEL}/files/{BASELINE_FILE_ID}", json={"chunkCount": 1})
        response = await account.api(
            "PUT",
            f"{MODEL}/files/{BASELINE_FILE_ID}/chunks/0",
            content=body,
            headers={"Content-Type": content_type},
        )
        assert response.status_code == status
        assert response.json()["status"]["code"] == status


async def test_setting_the_chunk_count_of_an_unknown_file_creates_a_private_one() -> None:
    async with tenant() as account:
        created = (await account.ok("POST", f"{MODEL}/files/113000000099", json={"chunkCount": 1}))["file"]
        assert created["name"] == "113000000099"
        assert created["id"] != "113000000099"
        assert created["id"].startswith("113")
        bad = await account.api("POST", f"{MODEL}/files/{BASELINE_FILE_ID}", json={"chunkCount": "two"})
        assert bad.status_code == 400


async def test_a_streamed_upload_is_only_importable_once_completed() -> None:
    async with tenant(task_polls_to_complete=1) as account:
        await account.ok("POST", f"{MODEL}/files/{BASELINE_FILE_ID}", json={"chunkCount": -1})
        rows = [HEADER, "P-1,2026-01,USD,baseline,10.00\n"]
        for index, part in enumerate(rows):
            response = await account.api(
                "PUT",
                f"{MODEL}/files/{BASELINE_FILE_ID}/chunks/{index}",
                content=part.encode(),
                headers={"Content-Type": "application/octet-stream"},
            )
            assert response.status_code == 204
        early = await account.run("imports", BASELINE_IMPORT_ID)
        assert early["result"]["successful"] is False
        assert "not complete" in early["result"]["details"][0]["localMessageText"]
        assert cells(account, "P-1", "baseline") == {}
        completed = await account.ok(
            "POST", f"{MODEL}/files/{BASELINE_FILE_ID}/complete", json={"id": BASELINE_FILE_ID}
        )
        assert completed["file"]["chunkCount"] == 2
        done = await account.run("imports", BASELINE_IMPORT_ID)
        assert done["result"]["successful"] is True
        assert cells(account, "P-1", "baseline") == {"2026-01": "10.00"}


async def test_a_whole_file_uploads_with_one_put() -> None:
    async with tenant(task_polls_to_complete=1) as account:
        response = await account.api(
            "PUT",
            f"{MODEL}/files/{ACTUALS_FILE_ID}",
            content=(HEADER + "P-2,2026-02,EUR,actual,5.5\n").encode(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 204
        assert (await account.run("imports", ACTUALS_IMPORT_ID))["result"]["successful"] is True
        assert cells(account, "P-2", "actual") == {"2026-02": "5.5"}


# ---------------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------------


async def test_an_import_task_progresses_over_polls_and_then_loads() -> None:
    async with tenant() as account:
        account.sandbox.clock = lambda: T0
        await account.login()
        await account.upload(
            BASELINE_FILE_ID, HEADER + "P-1,2026-01,USD,baseline,100.00\nP-1,2026-02,USD,baseline,250.50\n"
        )
        started = await account.ok(
            "POST", f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks", json={"localeName": "en_US"}
        )
        task_id = started["task"]["taskId"]
        assert started["task"] == {
            "taskId": task_id,
            "taskState": "NOT_STARTED",
            "creationTime": int(T0 * 1000),
        }
        path = f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks/{task_id}"
        running = (await account.ok("GET", path))["task"]
        assert running["taskState"] == "IN_PROGRESS"
        assert running["progress"] == 0.5
        assert "result" not in running
        done = (await account.ok("GET", path))["task"]
        assert done["taskState"] == "COMPLETE"
        assert done["progress"] == 1.0
        assert done["currentStep"] == "Complete."
        result = done["result"]
        assert result["successful"] is True
        assert result["failureDumpAvailable"] is False
        assert result["objectId"] == BASELINE_IMPORT_ID
        values = result["details"][0]["values"]
        counts = dict(zip(values[::2], values[1::2], strict=True))
        assert counts["successRowCount"] == "2"
        assert counts["failedCount"] == "0"
        assert cells(account, "P-1", "baseline") == {"2026-01": "100.00", "2026-02": "250.50"}
        assert (await account.ok("GET", path))["task"]["taskState"] == "COMPLETE"
        listed = await account.ok("GET", f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks")
        assert listed["tasks"] == [
            {"taskId": task_id, "taskState": "COMPLETE", "creationTime": int(T0 * 1000)}
        ]
        assert (
            await account.api("GET", f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks/NOPE")
        ).status_code == 404
        assert (await account.api("POST", f"{MODEL}/imports/112999999999/tasks", json={})).status_code == 404


async def test_a_slower_task_reports_not_started_first() -> None:
    async with tenant(task_polls_to_complete=3) as account:
        await account.upload(BASELINE_FILE_ID, HEADER + "P-1,2026-01,USD,baseline,1\n")
        started = await account.ok(
            "POST", f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks", json={"localeName": "en_US"}
        )
        path = f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks/{started['task']['taskId']}"
        states = [(await account.ok("GET", path))["task"]["taskState"] for _ in range(3)]
        assert states == ["NOT_STARTED", "IN_PROGRESS", "COMPLETE"]


async def test_a_task_cancelled_before_it_ran_loads_nothing() -> None:
    async with tenant() as account:
        await account.upload(BASELINE_FILE_ID, HEADER + "P-3,2026-01,USD,baseline,1\n")
        started = await account.ok(
            "POST", f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks", json={"localeName": "en_US"}
        )
        path = f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks/{started['task']['taskId']}"
        cancelled = await account.ok("DELETE", path)
        assert cancelled["task"]["taskState"] == "CANCELLED"
        assert (await account.ok("GET", path))["task"]["taskState"] == "CANCELLED"
        assert await account.records("revenue", project="P-3") == []


async def test_a_task_runs_with_the_file_as_it_was_when_it_started() -> None:
    async with tenant() as account:
        await account.upload(BASELINE_FILE_ID, HEADER + "P-4,2026-01,USD,baseline,1\n")
        started = await account.ok(
            "POST", f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks", json={"localeName": "en_US"}
        )
        await account.upload(BASELINE_FILE_ID, HEADER + "P-4,2026-01,USD,baseline,999\n")
        path = f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks/{started['task']['taskId']}"
        await account.ok("GET", path)
        await account.ok("GET", path)
        assert cells(account, "P-4", "baseline") == {"2026-01": "1"}


# ---------------------------------------------------------------------------------------------------------
# The revenue module
# ---------------------------------------------------------------------------------------------------------


async def test_bad_rows_fail_with_a_dump_and_the_good_rows_load() -> None:
    async with tenant() as account:
        content = (
            "project,currency,version,month,amount,reference\n"
            "P-5,USD,baseline,2026-01,100.00,plan-1\n"
            "P-5,USD,baseline,2026-13,100.00,plan-1\n"
            "P-5,USD,baseline,2041-01,100.00,plan-1\n"
            "P-5,USD,forecast,2026-02,100.00,plan-1\n"
            "P-5,usd,baseline,2026-03,100.00,plan-1\n"
            "P-5,USD,baseline,2026-04,1e3,plan-1\n"
            "P-5,EUR,baseline,2026-05,5.00,plan-1\n"
            "P-5,USD,baseline,2026-06,,plan-1\n"
        )
        await account.upload(BASELINE_FILE_ID, content)
        task = await account.run("imports", BASELINE_IMPORT_ID)
        result = task["result"]
        assert result["successful"] is False
        assert result["failureDumpAvailable"] is True
        values = result["details"][0]["values"]
        counts = dict(zip(values[::2], values[1::2], strict=True))
        assert (counts["successRowCount"], counts["failedCount"], counts["ignoredCount"]) == ("1", "6", "1")
        assert counts["totalRowCount"] == "8"
        assert await account.records("revenue", project="P-5") == [
            {
                "project": "P-5",
                "version": "baseline",
                "month": "2026-01",
                "currency": "USD",
                "amount": "100.00",
                "reference": "plan-1",
            }
        ]
        dump = await account.api("GET", f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks/{task['taskId']}/dump")
        assert dump.status_code == 200
        lines = dump.text.splitlines()
        assert lines[0] == "_Line_,project,currency,version,month,amount,reference,_Error_1_"
        assert [line.split(",")[0] for line in lines[1:]] == ["3", "4", "5", "6", "7", "8"]
        assert "outside the model's timescale" in lines[2]
        assert "does not match the project's currency USD" in lines[6]


async def test_an_import_without_a_column_fails_as_a_whole() -> None:
    async with tenant() as account:
        await account.upload(BASELINE_FILE_ID, "project,month,currency,amount\nP-6,2026-01,USD,1\n")
        result = (await account.run("imports", BASELINE_IMPORT_ID))["result"]
        assert result["successful"] is False
        assert result["failureDumpAvailable"] is False
        assert "'version'" in result["details"][0]["localMessageText"]


async def test_an_import_overwrites_only_the_cells_in_its_file_as_anaplan_does() -> None:
    async with tenant() as account:
        before_actuals = cells(account, DEMO_PROJECT_ID, "actual")
        before = cells(account, DEMO_PROJECT_ID, "baseline")
        assert len(before) == 12
        await account.upload(BASELINE_FILE_ID, HEADER + f"{DEMO_PROJECT_ID},2026-06,USD,baseline,1.00\n")
        assert (await account.run("imports", BASELINE_IMPORT_ID))["result"]["successful"] is True
        # The other eleven months keep their figures: an Anaplan import does not clear what it leaves out.
        assert cells(account, DEMO_PROJECT_ID, "baseline") == {**before, "2026-06": "1.00"}
        assert cells(account, DEMO_PROJECT_ID, "actual") == before_actuals
        # A rejected row writes nothing.
        await account.upload(ACTUALS_FILE_ID, HEADER + f"{DEMO_PROJECT_ID},2026-01,EUR,actual,1.00\n")
        assert (await account.run("imports", ACTUALS_IMPORT_ID))["result"]["successful"] is False
        assert cells(account, DEMO_PROJECT_ID, "actual") == before_actuals


async def test_an_imported_zero_empties_its_cell_and_the_export_drops_the_month() -> None:
    async with tenant() as account:
        zeros = "".join(f"{DEMO_PROJECT_ID},2026-{m:02d},USD,baseline,0\n" for m in (11, 12))
        no_actual = f"{DEMO_PROJECT_ID},2026-03,USD,actual,0.00\n"
        await account.upload(BASELINE_FILE_ID, HEADER + zeros + no_actual)
        result = (await account.run("imports", BASELINE_IMPORT_ID))["result"]
        assert result["successful"] is True
        assert sorted(cells(account, DEMO_PROJECT_ID, "baseline")) == [f"2026-{m:02d}" for m in range(1, 11)]
        assert sorted(cells(account, DEMO_PROJECT_ID, "actual")) == ["2026-01", "2026-02"]
        await account.run("exports", FORECAST_EXPORT_ID)
        exported = (await account.api("GET", f"{MODEL}/files/{FORECAST_EXPORT_ID}")).text.splitlines()
        assert [line.split(",")[1] for line in exported[1:]] == [f"2026-{m:02d}" for m in range(1, 11)]
        # With no actual left, March is the baseline's again.
        assert exported[3] == f"{DEMO_PROJECT_ID},2026-03,USD,50000.00,baseline"


async def test_an_exports_metadata_describes_the_file_it_writes() -> None:
    # The shape Anaplan's own client reads (Anaplan Connect's ExportMetadata: columnCount, rowCount,
    # exportFormat, separator, encoding, delimiter, dataTypes, headerNames, listNames).
    async with tenant() as account:
        body = await account.ok("GET", f"{MODEL}/exports/{FORECAST_EXPORT_ID}")
        metadata = body["exportMetadata"]
        assert body["meta"]["schema"].endswith("/2/0/objects/exportMetadata")
        assert metadata == {
            "columnCount": 5,
            "dataTypes": ["ENTITY", "TIME_ENTITY", "TEXT", "NUMBER", "TEXT"],
            "delimiter": '"',
            "encoding": "UTF-8",
            "exportFormat": "text/csv",
            "headerNames": ["project", "month", "currency", "amount", "source"],
            "listNames": ["Projects", "", "", "", ""],
            "rowCount": 12,
            "separator": ",",
        }
        await account.run("exports", FORECAST_EXPORT_ID)
        written = (await account.api("GET", f"{MODEL}/files/{FORECAST_EXPORT_ID}")).text.splitlines()
        assert written[0].split(metadata["separator"]) == metadata["headerNames"]
        assert len(written) - 1 == metadata["rowCount"]
        missing = await account.api("GET", f"{MODEL}/exports/116000000099")
        assert missing.status_code == 404
        assert missing.json()["status"]["code"] == 404


async def test_the_forecast_export_takes_actuals_where_there_are_some() -> None:
    async with tenant(export_chunk_bytes=64) as account:
        task = await account.run("exports", FORECAST_EXPORT_ID)
        assert task["result"]["successful"] is True
        chunks = (await account.ok("GET", f"{MODEL}/files/{FORECAST_EXPORT_ID}/chunks"))["chunks"]
        assert len(chunks) > 1
        parts = [
            (await account.api("GET", f"{MODEL}/files/{FORECAST_EXPORT_ID}/chunks/{chunk['id']}")).content
            for chunk in chunks
        ]
        lines = b"".join(parts).decode().splitlines()
        assert lines[0] == "project,month,currency,amount,source"
        assert lines[1:4] == [
            f"{DEMO_PROJECT_ID},2026-01,USD,38250.50,actual",
            f"{DEMO_PROJECT_ID},2026-02,USD,47100.00,actual",
            f"{DEMO_PROJECT_ID},2026-03,USD,49875.25,actual",
        ]
        assert lines[4] == f"{DEMO_PROJECT_ID},2026-04,USD,55000.00,baseline"
        assert len(lines) == 13
        listed = (await account.ok("GET", f"{MODEL}/files"))["files"]
        assert next(f for f in listed if f["id"] == FORECAST_EXPORT_ID)["chunkCount"] == len(chunks)
        refused = await account.api(
            "PUT",
            f"{MODEL}/files/{FORECAST_EXPORT_ID}",
            content=b"x",
            headers={"Content-Type": "application/octet-stream"},
        )
        assert refused.status_code == 400


# ---------------------------------------------------------------------------------------------------------
# Limits, faults and administration
# ---------------------------------------------------------------------------------------------------------


async def test_each_token_has_a_request_budget_per_minute() -> None:
    async with tenant(requests_per_minute=3) as account:
        account.sandbox.clock = lambda: T0
        await account.login()
        for _ in range(3):
            assert (await account.api("GET", "/2/0/workspaces")).status_code == 200
        limited = await account.api("GET", "/2/0/workspaces")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "50"
        assert limited.json() == {"status": {"code": 429, "message": "Too Many Requests"}}
        # The authentication service is not metered, and another token has a budget of its own.
        first = account.token
        await account.login()
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 200
        account.token = first
        account.sandbox.clock = lambda: T0 + 50
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 200
        stats = (await account.client.get("/__sandbox/stats")).json()
        assert stats["throttled"] == 1


async def test_faults_apply_to_the_api_and_are_cleared_over_http() -> None:
    async with tenant() as account:
        rule = {"kind": "error", "status": 503, "path_pattern": "^/2/0/workspaces$", "times": 1}
        assert (await account.client.post("/__sandbox/faults", json=rule)).status_code == 201
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 503
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 200
        await account.client.post("/__sandbox/faults", json={"kind": "error", "status": 500})
        assert (await account.api("GET", "/2/0/models")).status_code == 500
        assert (await account.client.get("/__sandbox/records/revenue")).status_code == 200
        assert (await account.client.delete("/__sandbox/faults")).status_code == 204
        assert (await account.api("GET", "/2/0/models")).status_code == 200


async def test_stored_records_stats_and_reset() -> None:
    async with tenant() as account:
        actuals = await account.records("revenue", project=DEMO_PROJECT_ID, version="actual")
        assert [row["month"] for row in actuals] == ["2026-01", "2026-02", "2026-03"]
        await account.upload(BASELINE_FILE_ID, HEADER + "P-7,2026-01,USD,baseline,1\n")
        files = await account.records("files", id=BASELINE_FILE_ID)
        assert files[0]["content"].endswith("P-7,2026-01,USD,baseline,1\n")
        # A started task's work is done before the records are read, whatever its polls.
        await account.ok("POST", f"{MODEL}/imports/{BASELINE_IMPORT_ID}/tasks", json={"localeName": "en_US"})
        assert len(await account.records("revenue", project="P-7")) == 1
        assert len(await account.records("tasks", kind="imports")) == 1
        unknown = await account.client.get("/__sandbox/records/nothing")
        assert unknown.status_code == 404
        stats = (await account.client.get("/__sandbox/stats")).json()
        assert {"method": "POST", "path": "/token/authenticate", "status": 201} in stats["requests"]
        assert (await account.client.post("/__sandbox/reset")).status_code == 204
        assert await account.records("revenue", project="P-7") == []
        assert (await account.api("GET", "/2/0/workspaces")).status_code == 401


def mount(prefix: str, app: Any) -> Any:
    """What the gateway does: strip the prefix from the path and record it in root_path."""

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        scope = {
            **scope,
            "root_path": scope.get("root_path", "") + prefix,
            "path": path[len(prefix) :] or "/",
        }
        await app(scope, receive, send)

    return mounted


async def test_mounted_under_a_root_path_its_links_keep_the_prefix() -> None:
    app = create_anaplan_sandbox()
    root = "http://gateway.test/sandboxes/anaplan"
    transport = httpx.ASGITransport(app=mount("/sandboxes/anaplan", app))
    async with httpx.AsyncClient(transport=transport, base_url=root) as client:
        token = (await client.post("/token/authenticate", headers=basic())).json()["tokenInfo"]["tokenValue"]
        response = await client.get(
            "/2/0/workspaces", params={"limit": 1}, headers={"Authorization": f"AnaplanAuthToken {token}"}
        )
        assert response.status_code == 200
        assert response.json()["meta"]["paging"]["next"] == f"{root}/2/0/workspaces?limit=1&offset=1"
