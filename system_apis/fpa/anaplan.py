"""The Anaplan adapter for the FP&A port: revenue baselines and actuals in, the forecast out.

Anaplan's wire format ends here. Outbound behaviour (pool, timeouts, retries of safe calls, Retry-After,
breaker) is the shared ``VendorHttpClient``'s; this module adds what is Anaplan's own:

- **auth**: an ``AnaplanAuthToken`` from the authentication service (Basic authentication with the
  integration user), kept until shortly before it expires (tokens last 35 minutes), then refreshed with
  ``/token/refresh`` (falling back to a new login), and fetched anew once when the API answers 401;
- **bulk load**: a plan becomes the CSV the model's import reads (``anaplan_mapping.revenue_csv``),
  uploaded in gzip chunks (``POST files/{id}`` with ``chunkCount``, then ``PUT files/{id}/chunks/{i}``),
  then the import runs as a task (``POST imports/{id}/tasks``) polled with backoff until COMPLETE,
  bounded by ``task_timeout_seconds``; refused rows come from the task's failure dump;
- **read**: the forecast export runs as a task the same way, and its output file is downloaded chunk by
  chunk and filtered to the project. The export covers the whole model, so reads that come while one runs
  share it (one task, several awaiters) instead of each starting its own: a view asking for two projects'
  figures at once costs one export. A read joins only an export that started after this adapter's last
  publish began or ended (so it never misses a publish of its own process); it sees the model as of that
  export's start, at most one export run before it asked. An export that fails fails every read waiting on
  it; the next read starts a fresh one;
- actions are named in the settings and looked up by name once (imports, exports and each import's file);
- errors: ``{"status": {"code", "message"}}`` bodies; 429 carries Retry-After.

Republishing: an Anaplan import writes only the cells its file names; a month the model holds from an
earlier publish and the new plan leaves out would keep its old figure. So a publish first reads the
project's current figures through the forecast export and writes an explicit zero for each month the model
has for that version and the plan no longer does (a zero cell is an empty one in Anaplan). The model then
holds exactly the plan. The cost is one export run per publish, and the export covers the whole model.
The zero rows are not counted in ``rows_loaded`` (which counts the plan's months); a zero row the model
refuses is reported in ``failures`` with its month, as the old figure is then still there.

Idempotency: publishing the same plan twice writes the same cells. That makes every step safe to repeat,
and they are retried as such: setting the chunk count, putting a chunk (the same bytes at the same index),
completing, and starting the import task (running it again over the same file writes the same cells). A
retry after a lost answer therefore never doubles a figure.

An uploaded file is one object per Anaplan user: two publishes through the same user at once would mix
their files. The adapter holds a lock around upload-and-import, which covers one process; several
processes publishing through one Anaplan user need their own serialisation (one worker, or one Anaplan
user per process).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msgspec
import structlog

from apis.config import AnaplanSettings
from apis.oauth_client import TokenFetchError
from contracts.models import (
    Forecast,
    ForecastSource,
    PublishFailure,
    PublishResult,
    RevenueActuals,
    RevenueBaseline,
)
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorError,
    VendorRejected,
    VendorTimeout,
    VendorUnavailable,
)
from system_apis.fpa.anaplan_mapping import (
    AnaplanChunkList,
    AnaplanExportList,
    AnaplanImportList,
    AnaplanListing,
    AnaplanTask,
    AnaplanTaskEnvelope,
    AnaplanTokenResponse,
    Version,
    decode,
    error_message,
    failures_from_dump,
    forecast_from_export,
    publish_result,
    result_summary,
    revenue_csv,
    row_counts,
)
from system_apis.vendor_checks import Check
from system_apis.vendor_http import (
    BreakerPolicy,
    RetryPolicy,
    VendorHttpClient,
    default_error_for_response,
    parse_retry_after,
    vendor_http_config,
)
from system_apis.vendor_links import path_segment

__all__ = ["AnaplanFpa", "AnaplanTokenAuth"]

VENDOR = "anaplan"
#: Anaplan takes chunks of 1 to 50 MB; 10 MB keeps each request short.
DEFAULT_CHUNK_BYTES = 10 * 1024 * 1024
_PAGE_SIZE = 500
_MAX_PAGES = 50
_JSON_HEADERS = {"Content-Type": "application/json"}
_BINARY_ACCEPT = {"Accept": "application/octet-stream"}
# Refresh a token this long before Anaplan says it expires (capped at a tenth of its lifetime).
_REFRESH_MARGIN_SECONDS = 300.0
_MAX_TOKEN_BODY = 64 * 1024
_T = TypeVar("_T")
_Page = TypeVar("_Page", bound=AnaplanListing)


def _log() -> Any:
    # A fresh lazy proxy per use, so structlog.testing.capture_logs sees the lines (see vendor_http).
    return structlog.get_logger(__name__)


# --- auth ----------------------------------------------------------------------------------------------


class AnaplanTokenAuth(httpx.Auth):
    """``Authorization: AnaplanAuthToken {token}`` from Anaplan's authentication service.

    ``transport`` carries the token requests (the test seam, like the data calls'); ``clock`` is the wall
    clock Anaplan's ``expiresAt`` (Unix milliseconds) is compared with. The password is never logged and
    not shown by ``repr``.
    """

    def __init__(
        self,
        *,
        auth_url: str,
        user: str,
        password: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._auth_url = auth_url.rstrip("/")
        self._user = user
        self._basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._clock = clock
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            verify=True,
            headers={"Accept": "application/json"},
        )
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        #: How many tokens this auth has obtained, logins and refreshes (observable for tests).
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"AnaplanTokenAuth(auth_url={self._auth_url!r}, user={self._user!r})"

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def access_token(self, *, force: bool = False, stale: str | None = None) -> str:
        """A valid token. ``force`` logs in again, unless another task already replaced ``stale``."""
        if not force and self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if self._fresh() and (not force or (stale is not None and self._token != stale)):
                assert self._token is not None
                return self._token
            if not force and self._token is not None:
                refreshed = await self._refresh(self._token)
                if refreshed is not None:
                    return refreshed
            return await self._login()

    async def _login(self) -> str:
        response = await self._http.post(
            f"{self._auth_url}/token/authenticate", headers={"Authorization": self._basic}
        )
        return await self._accept(response, "login")

    async def _refresh(self, token: str) -> str | None:
        """A refreshed token, or None when Anaplan will not refresh this one (log in instead)."""
        try:
            response = await self._http.post(
                f"{self._auth_url}/token/refresh", headers={"Authorization": f"AnaplanAuthToken {token}"}
            )
            return await self._accept(response, "refresh")
        except TokenFetchError:
            return None

    async def _accept(self, response: httpx.Response, kind: str) -> str:
        body = await response.aread()
        if not response.is_success:
            reason = error_message(body) if response.status_code < 500 else None
            raise TokenFetchError(
                f"Anaplan token {kind} answered HTTP {response.status_code}"
                + (f" ({reason})" if reason else ""),
                status_code=response.status_code,
            )
        if len(body) > _MAX_TOKEN_BODY:
            raise TokenFetchError(f"Anaplan token {kind} answered with an oversized body")
        try:
            answer = decode(body, AnaplanTokenResponse)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise TokenFetchError(f"Anaplan token {kind} answered with an unusable body") from None
        if answer.token_info is None or not answer.token_info.token_value:
            raise TokenFetchError(f"Anaplan token {kind} gave no token ({answer.status or 'no status'})")
        now = self._clock()
        expires_at = answer.token_info.expires_at
        if expires_at is None:
            # No expiry given: keep it until the API answers 401, which logs in again once.
            self._refresh_at = float("inf")
        else:
            lifetime = max(0.0, expires_at / 1000 - now)
            self._refresh_at = now + lifetime - min(_REFRESH_MARGIN_SECONDS, lifetime / 10)
        self._token = answer.token_info.token_value
        self.tokens_fetched += 1
        _log().info("anaplan_token_fetched", kind=kind)
        return self._token

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.access_token()
        request.headers["Authorization"] = f"AnaplanAuthToken {token}"
        response = yield request
        if response.status_code == 401:
            # Once: the token may have been revoked or have expired early; a second 401 is the caller's.
            await response.aread()
            token = await self.access_token(force=True, stale=token)
            request.headers["Authorization"] = f"AnaplanAuthToken {token}"
            yield request

    async def aclose(self) -> None:
        await self._http.aclose()


# --- the adapter ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Actions:
    """The model's actions this adapter runs, by id: each import with its data file, and the export."""

    imports: dict[str, tuple[str, str]]  # name -> (import id, file id)
    exports: dict[str, str]  # name -> export id


class AnaplanFpa:
    """``FpaPort`` over Anaplan's Integration API v2.

    ``transport`` is the test seam (e.g. ``httpx.ASGITransport`` to the sandbox), used for the token calls
    too. ``retry``, ``breaker`` and ``sleep`` tune the shared outbound behaviour; ``sleep`` also paces task
    polling, from ``poll_initial_seconds`` doubling to ``poll_max_seconds``. ``chunk_bytes`` is the upload
    chunk size.
    """

    vendor = VENDOR

    def __init__(
        self,
        settings: AnaplanSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        correlation_id: Callable[[], str | None] = lambda: None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        poll_initial_seconds: float = 0.5,
        poll_max_seconds: float = 5.0,
    ) -> None:
        if settings.base_url is None:
            raise ValueError("AnaplanFpa needs a base_url (the bootstrap substitutes the sandbox's)")
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be at least 1")
        self._settings = settings
        root = settings.base_url.rstrip("/")
        model_url = f"{root}/2/0/workspaces/{settings.workspace_id}/models/{settings.model_id}"
        config = vendor_http_config(settings, model_url, retry=retry, breaker=breaker)
        self.auth = AnaplanTokenAuth(
            auth_url=settings.auth_url,
            user=settings.user,
            password=settings.password,
            transport=transport,
            timeout=settings.timeout_seconds,
            clock=clock,
        )
        self._http = VendorHttpClient(
            VENDOR,
            config,
            auth=self.auth,
            transport=transport,
            correlation_id=correlation_id,
            error_for_response=self._error_for_response,
            sleep=sleep,
        )
        self._sleep = sleep
        self._chunk_bytes = chunk_bytes
        self._poll_initial = poll_initial_seconds
        self._poll_max = poll_max_seconds
        self._actions: _Actions | None = None
        # One upload-and-import at a time: the import file is one object per Anaplan user.
        self._load_lock = asyncio.Lock()
        # The forecast export running now (shared by the reads that come meanwhile), and the publishes seen:
        # a read joins only an export started since the last publish began or ended.
        self._export: tuple[int, asyncio.Task[bytes]] | None = None
        self._publishes = 0

    @property
    def http(self) -> VendorHttpClient:
        """The outbound client (its breaker and retry budget are observable, e.g. for health checks)."""
        return self._http

    async def close(self) -> None:
        await self._http.aclose()
        await self.auth.aclose()

    # --- the port --------------------------------------------------------------------------------------

    async def publish_baseline(self, project_id: str, baseline: RevenueBaseline) -> PublishResult:
        return await self._publish(project_id, "baseline", baseline, self._settings.baseline_import)

    async def publish_actuals(self, project_id: str, actuals: RevenueActuals) -> PublishResult:
        return await self._publish(project_id, "actual", actuals, self._settings.actuals_import)

    async def get_forecast(self, project_id: str) -> Forecast:
        forecast = await self._read_forecast(project_id)
        if forecast is None:
            raise NotFound(VENDOR, f"Anaplan has no revenue figures for project {project_id}")
        return forecast

    async def _read_forecast(self, project_id: str) -> Forecast | None:
        """The project's figures as the forecast export has them now; None when it has none."""
        content = await self._forecast_export()
        try:
            return forecast_from_export(content, project_id)
        except (ValueError, UnicodeDecodeError) as exc:
            raise VendorBadResponse(VENDOR, f"the forecast export is unusable: {exc}") from None

    async def _forecast_export(self) -> bytes:
        """The forecast export's file: the running export's when one started since the last publish began
        or ended, else a new run's. The run is its own task, so a reader cancelled (its caller gone) leaves
        it running for the others."""
        running = self._export
        if running is None or running[0] != self._publishes or running[1].done():
            task = asyncio.ensure_future(self._run_forecast_export())
            running = (self._publishes, task)
            self._export = running
            task.add_done_callback(self._export_done)
        return await asyncio.shield(running[1])

    def _export_done(self, task: asyncio.Task[bytes]) -> None:
        if self._export is not None and self._export[1] is task:
            self._export = None  # the next read starts a fresh export, whether this one failed or not
        if not task.cancelled():
            task.exception()  # retrieved here: every reader that waited on it has raised it already

    async def _run_forecast_export(self) -> bytes:
        actions = await self._resolve()
        export_id = actions.exports.get(self._settings.forecast_export)
        if export_id is None:
            raise self._misconfigured(f"the model has no export named {self._settings.forecast_export!r}")
        task = await self._run(f"exports/{export_id}/tasks")
        if task.result is None or not task.result.successful:
            summary = result_summary(task.result) if task.result else "no result"
            raise VendorBadResponse(VENDOR, f"the forecast export failed: {summary}")
        return await self._download(export_id)

    async def _stale_months(self, project_id: str, version: Version, plan_months: set[str]) -> list[str]:
        """The months the model holds for the project's ``version`` that the new plan does not have."""
        current = await self._read_forecast(project_id)
        if current is None:
            return []
        # The export shows a month's actual where it has one, else its baseline: every month it lists may
        # hold a baseline (zeroing one that does not is harmless), and only "actual" months hold actuals.
        held = {
            month.month
            for month in current.months
            if version == "baseline" or month.source is ForecastSource.ACTUAL
        }
        return sorted(held - plan_months)

    # --- loading ---------------------------------------------------------------------------------------

    async def _publish(
        self, project_id: str, version: Version, plan: RevenueBaseline | RevenueActuals, import_name: str
    ) -> PublishResult:
        actions = await self._resolve()
        found = actions.imports.get(import_name)
        if found is None:
            raise self._misconfigured(f"the model has no import named {import_name!r} with a data file")
        import_id, file_id = found
        plan_months = {entry.month for entry in plan.months}
        async with self._load_lock:
            self._publishes += 1  # no read from here on joins an export started before this publish
            try:
                # Read inside the lock, so a publish running just before this one is already in the model.
                cleared = await self._stale_months(project_id, version, plan_months)
                content = revenue_csv(project_id, version, plan, clear=cleared)
                await self._upload(file_id, content)
                task = await self._run(f"imports/{import_id}/tasks")
            finally:
                self._publishes += 1  # nor, after it, one started while it was being written
            result = task.result
            if result is None:
                raise VendorBadResponse(VENDOR, "the import task completed without a result")
            failures: list[PublishFailure] = []
            if result.failure_dump_available:
                failures = await self._failures(import_id, task.task_id)
        try:
            counts = row_counts(result)
        except ValueError as exc:
            raise VendorBadResponse(VENDOR, f"the import task's result is unusable: {exc}") from None
        published = publish_result(task.task_id, result, failures)
        if cleared:
            # The zero rows are the adapter's, not the plan's months: only the plan's count as loaded.
            refused = {failure.month for failure in failures}
            zeros_loaded = len([month for month in cleared if month not in refused])
            published = msgspec.structs.replace(
                published, rows_loaded=max(0, published.rows_loaded - zeros_loaded)
            )
        nothing_loaded = published.rows_loaded == 0 and published.rows_failed > 0
        if nothing_loaded or (counts is None and not result.successful):
            # Nothing was loaded: the model refused the data as a whole, or every row of it.
            reasons = "; ".join(failure.message for failure in failures[:3])
            message = f"Anaplan loaded none of the {version} rows: {result_summary(result)}"
            raise VendorRejected(VENDOR, message + (f" ({reasons})" if reasons else ""))
        _log().info(
            "anaplan_published",
            vendor=VENDOR,
            project_id=project_id,
            version=version,
            task_id=task.task_id,
            rows_loaded=published.rows_loaded,
            rows_failed=published.rows_failed,
            months_cleared=len(cleared),
        )
        return published

    async def _upload(self, file_id: str, content: bytes) -> None:
        chunks = [
            content[start : start + self._chunk_bytes] for start in range(0, len(content), self._chunk_bytes)
        ]
        body = msgspec.json.encode({"chunkCount": len(chunks)})
        await self._http.send(
            "POST", f"files/{file_id}", content=body, headers=_JSON_HEADERS, idempotent=True
        )
        for index, chunk in enumerate(chunks):
            # The same bytes at the same index: repeating a chunk changes nothing, so it may be retried.
            await self._http.send(
                "PUT",
                f"files/{file_id}/chunks/{index}",
                content=gzip.compress(chunk, mtime=0),
                headers={"Content-Type": "application/x-gzip"},
                idempotent=True,
            )

    async def _failures(self, import_id: str, task_id: str) -> list[PublishFailure]:
        response = await self._http.send(
            "GET", f"imports/{import_id}/tasks/{task_id}/dump", headers=_BINARY_ACCEPT, accept=(404,)
        )
        if response.status_code == 404:
            return []  # a dump goes when the user next runs the import; the counts still tell
        return failures_from_dump(response.content)

    # --- tasks -----------------------------------------------------------------------------------------

    async def _run(self, tasks_path: str) -> AnaplanTask:
        """Start a task of an action and poll it until it completes; raise when it will not."""
        response = await self._http.send(
            "POST",
            tasks_path,
            content=msgspec.json.encode({"localeName": "en_US"}),
            headers=_JSON_HEADERS,
            # Running an action again does again what it did (the import writes the same cells).
            idempotent=True,
        )
        started = self._decode(response.content, AnaplanTaskEnvelope, "started task")
        task_id = _segment(started.task.task_id, "task")
        waited = 0.0
        delay = self._poll_initial
        while True:
            polled = await self._http.send("GET", f"{tasks_path}/{task_id}")
            task = self._decode(polled.content, AnaplanTaskEnvelope, "task").task
            if task.task_state == "COMPLETE":
                return task
            if task.task_state == "CANCELLED":
                raise VendorUnavailable(VENDOR, f"Anaplan task {task_id} was cancelled")
            if task.task_state not in ("NOT_STARTED", "IN_PROGRESS", "CANCELLING"):
                raise VendorBadResponse(VENDOR, f"Anaplan task {task_id} is in an unknown state")
            if waited >= self._settings.task_timeout_seconds:
                raise VendorTimeout(VENDOR, f"Anaplan task {task_id} did not complete in time")
            await self._sleep(delay)
            waited += delay
            delay = min(self._poll_max, delay * 2)

    # --- reads -----------------------------------------------------------------------------------------

    async def _download(self, file_id: str) -> bytes:
        chunk_ids: list[str] = []
        for page in await self._pages(f"files/{file_id}/chunks", AnaplanChunkList):
            chunk_ids.extend(_segment(chunk_id, "chunk") for chunk_id in page.ids)
        parts = []
        for chunk_id in chunk_ids:
            response = await self._http.send(
                "GET", f"files/{file_id}/chunks/{chunk_id}", headers=_BINARY_ACCEPT
            )
            parts.append(response.content)
        return b"".join(parts)

    async def check(self) -> list[Check]:
        """Log in, read the workspace and the model, and find each configured action by name as publishing
        and reading the forecast do."""
        settings = self._settings
        workspace_url = f"{(settings.base_url or '').rstrip('/')}/2/0/workspaces/{settings.workspace_id}"
        places = (
            ("workspace", settings.workspace_id, workspace_url, "STRATUM_ANAPLAN__WORKSPACE_ID"),
            ("model", settings.model_id, str(self._http.base_url), "STRATUM_ANAPLAN__MODEL_ID"),
        )
        checks: list[Check] = []
        for kind, ident, url, env in places:
            response = await self._http.send("GET", url, accept=(403, 404))
            if response.status_code in (403, 404):
                reason = error_message(response.content) or f"HTTP {response.status_code}"
                access = f"{reason}: set {env} to the {kind} id (the integration user must have access)"
                checks.append(Check(vendor=VENDOR, what=f"{kind} {ident}", fix=access))
                return checks  # nothing under a missing workspace or model can be found
            checks.append(Check(vendor=VENDOR, what=f"{kind} {ident}"))
        actions = await self._resolve()
        wanted = (
            ("import", settings.baseline_import, actions.imports, "STRATUM_ANAPLAN__BASELINE_IMPORT"),
            ("import", settings.actuals_import, actions.imports, "STRATUM_ANAPLAN__ACTUALS_IMPORT"),
            ("export", settings.forecast_export, actions.exports, "STRATUM_ANAPLAN__FORECAST_EXPORT"),
        )
        for kind, name, found, env in wanted:
            fix = (
                None
                if name in found
                else (
                    f"the model has no {kind} named {name!r}"
                    + (" with a data file" if kind == "import" else "")
                    + f": create it, or set {env} to its name"
                )
            )
            checks.append(Check(vendor=VENDOR, what=f"{kind} {name!r}", fix=fix))
        return checks

    async def _resolve(self) -> _Actions:
        """The model's imports (with their files) and exports by name, read once."""
        if self._actions is not None:
            return self._actions
        imports: dict[str, tuple[str, str]] = {}
        for page in await self._pages("imports", AnaplanImportList):
            for item in page.imports:
                if item.source is not None:
                    ids = (_segment(item.key, "import"), _segment(item.source, "file"))
                    imports.setdefault(item.name, ids)
        exports: dict[str, str] = {}
        for export_page in await self._pages("exports", AnaplanExportList):
            for action in export_page.exports:
                exports.setdefault(action.name, _segment(action.key, "export"))
        self._actions = _Actions(imports=imports, exports=exports)
        return self._actions

    async def _pages(self, path: str, kind: type[_Page]) -> list[_Page]:
        """Every page of a list, following ``meta.paging`` by ``limit``/``offset``."""
        pages: list[_Page] = []
        offset = 0
        for _ in range(_MAX_PAGES):
            response = await self._http.send(
                "GET", path, params={"limit": str(_PAGE_SIZE), "offset": str(offset)}
            )
            page = self._decode(response.content, kind, path)
            pages.append(page)
            paging = page.meta.paging
            if paging is None or paging.current_page_size <= 0:
                return pages
            offset = paging.offset + paging.current_page_size
            if offset >= paging.total_size:
                return pages
        raise VendorBadResponse(VENDOR, f"Anaplan's {path} list did not end within {_MAX_PAGES} pages")

    # --- errors ----------------------------------------------------------------------------------------

    @staticmethod
    def _decode(content: bytes, kind: type[_T], what: str) -> _T:
        try:
            return decode(content, kind)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise VendorBadResponse(VENDOR, f"Anaplan sent an unusable {what}") from None

    def _misconfigured(self, message: str) -> VendorBadResponse:
        self._actions = None  # the model may have changed: look again next time
        return VendorBadResponse(VENDOR, f"{message} (check the Anaplan settings)")

    def _error_for_response(self, response: httpx.Response) -> VendorError:
        status = response.status_code
        reason = error_message(response.content)
        if status == 404:
            # Every path we call comes from the settings or from Anaplan itself: a 404 means the workspace,
            # model or an action is not where the settings say (the caller cannot fix that).
            return self._misconfigured(
                f"Anaplan has no {response.request.url.path}" + (f": {reason}" if reason else "")
            )
        if status == 429:
            return VendorUnavailable(
                VENDOR,
                "Anaplan is rate limiting us (HTTP 429)",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status in (400, 409, 413, 415, 422):
            return VendorRejected(
                VENDOR, f"Anaplan refused the request (HTTP {status})" + (f": {reason}" if reason else "")
            )
        return default_error_for_response(VENDOR, response)


def _segment(value: str, what: str) -> str:
    """An id Anaplan gave us, checked before it goes into a path: ``../`` in one would leave the model."""
    try:
        return path_segment(value)
    except ValueError:
        raise VendorBadResponse(VENDOR, f"Anaplan sent an unusable {what} id") from None
