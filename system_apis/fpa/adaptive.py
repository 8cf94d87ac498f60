"""The Workday Adaptive Planning adapter for the FP&A port: revenue baselines and actuals in, forecasts out.

Adaptive's wire format ends here. Outbound behaviour (pool, timeouts, retries of safe calls, Retry-After,
breaker) is the shared ``VendorHttpClient``'s; this module adds what is Adaptive's own:

- **the XML API**: every call is a ``POST`` of a ``<call method callerName>`` document to the versioned
  endpoint (``base_url``, e.g. ``https://api.adaptiveinsights.com/api/v40``), carrying the login and
  password (the API is stateless: no token, no session). The password is never logged, never in an error,
  and not shown by ``repr``;
- **answers**: ``<response success>`` with ``<messages>`` and ``<output>``; most failures are HTTP 200 with
  ``success="false"``, so ``success`` is checked on every answer. Bad credentials are ``VendorUnavailable``
  (the caller cannot fix them); an unknown version, account, level or dimension is ``VendorBadResponse``
  naming the setting to fix; anything else refused is ``VendorRejected`` with Adaptive's words;
- **the model**: a project's figures are the revenue account's cells at one level, on the value of the
  project dimension named after the project (Adaptive creates it on the first import). A baseline goes into
  the plan version (``planOrActuals="Plan"``), actuals into the actuals version. A level has one currency
  (read once with ``exportLevels``) and Adaptive files an import under it unconverted, so the level is
  chosen by the plan's currency (``levels_by_currency``, else ``level``): a plan whose level is kept in
  another currency is refused before anything is sent, and so is a plan in another currency than the
  figures the project already has (a project keeps one currency, as in the other FP&A port's vendors);
- **read**: ``exportData`` of each version at every configured level (the project dimension and the level
  as columns, each level in its own currency), both at once; the forecast is the actual where a month has
  one, else the plan.

Republishing: an import overwrites the cells it names and leaves the others, so a publish first reads the
project's current figures in that version and writes a zero to each month the new plan leaves out (a zero
cell is no figure: it exports as nothing). The model then holds exactly the plan, and publishing the same
plan twice writes the same cells: every call is safe to repeat and is retried as such. Publishes through
one adapter are serialised (read, then write); several processes publishing one project at once are not.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import structlog

from apis.config import AdaptiveSettings
from contracts.models import (
    Forecast,
    ForecastMonth,
    ForecastSource,
    PublishResult,
    RevenueActuals,
    RevenueBaseline,
)
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorError,
    VendorRejected,
    VendorUnavailable,
)
from system_apis.fpa.adaptive_mapping import (
    AdaptiveAnswer,
    call_document,
    export_body,
    figures_from_export,
    import_body,
    names_in,
    parse_answer,
    refusals,
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

__all__ = ["AdaptiveFpa"]

VENDOR = "adaptive"
_HEADERS = {"Content-Type": "text/xml; charset=UTF-8", "Accept": "text/xml, application/xml"}
# Message keys that mean "the settings name something the instance does not have" (see sandboxes/adaptive).
_MISCONFIGURED = (
    "invalid-version",
    "invalid-account",
    "invalid-level",
    "invalid-dimension",
    "invalid-instance",
    "invalid-api-version",
    "version-locked",
)


def _log() -> Any:
    # A fresh lazy proxy per use, so structlog.testing.capture_logs sees the lines (see vendor_http).
    return structlog.get_logger(__name__)


class AdaptiveFpa:
    """``FpaPort`` over Adaptive Planning's XML API.

    ``transport`` is the test seam (e.g. ``httpx.ASGITransport`` to the sandbox); ``retry``, ``breaker``
    and ``sleep`` tune the shared outbound behaviour.
    """

    vendor = VENDOR

    def __init__(
        self,
        settings: AdaptiveSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        correlation_id: Callable[[], str | None] = lambda: None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if settings.base_url is None:
            raise ValueError("AdaptiveFpa needs a base_url (the bootstrap substitutes the sandbox's)")
        self._settings = settings
        self._endpoint = settings.base_url.rstrip("/")
        config = vendor_http_config(settings, self._endpoint, retry=retry, breaker=breaker)
        self._http = VendorHttpClient(
            VENDOR,
            config,
            transport=transport,
            correlation_id=correlation_id,
            error_for_response=self._error_for_response,
            sleep=sleep,
            principal=settings.login,
        )
        # Every level a project's figures may be at, and each one's currency (read once).
        self._levels = tuple(dict.fromkeys([settings.level, *settings.levels_by_currency.values()]))
        self._currencies: dict[str, str] | None = None
        # One publish at a time: each reads the project's figures, then writes the plan over them.
        self._publish_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"AdaptiveFpa(endpoint={self._endpoint!r}, login={self._settings.login!r})"

    @property
    def http(self) -> VendorHttpClient:
        """The outbound client (its breaker and retry budget are observable, e.g. for health checks)."""
        return self._http

    async def close(self) -> None:
        await self._http.aclose()

    # --- the port --------------------------------------------------------------------------------------

    async def publish_baseline(self, project_id: str, baseline: RevenueBaseline) -> PublishResult:
        return await self._publish(project_id, "Plan", self._settings.plan_version, baseline)

    async def publish_actuals(self, project_id: str, actuals: RevenueActuals) -> PublishResult:
        return await self._publish(project_id, "Actuals", self._settings.actuals_version, actuals)

    async def get_forecast(self, project_id: str) -> Forecast:
        settings = self._settings
        currencies, plan_by_level, actual_by_level = await asyncio.gather(
            self._level_currencies(),
            self._figures(settings.plan_version, project_id),
            self._figures(settings.actuals_version, project_id),
        )
        levels = plan_by_level.keys() | actual_by_level.keys()
        if not levels:
            raise NotFound(VENDOR, f"Adaptive Planning has no revenue figures for project {project_id}")
        if len(levels) > 1:
            raise VendorBadResponse(
                VENDOR,
                f"Adaptive Planning holds project {project_id}'s figures at several levels "
                f"({', '.join(sorted(levels))}), so in several currencies: a project keeps one",
            )
        (level,) = levels
        plan, actual = plan_by_level.get(level, {}), actual_by_level.get(level, {})
        try:
            months = [
                ForecastMonth(month=month, amount=actual[month], source=ForecastSource.ACTUAL)
                if month in actual
                else ForecastMonth(month=month, amount=plan[month], source=ForecastSource.BASELINE)
                for month in sorted(plan.keys() | actual.keys())
            ]
        except ValueError as exc:
            raise VendorBadResponse(VENDOR, f"Adaptive Planning exported an unusable amount: {exc}") from None
        return Forecast(
            project_id=project_id,
            currency=currencies[level],
            months=months,
            as_of=max(actual) if actual else None,
        )

    # --- publishing ------------------------------------------------------------------------------------

    async def _publish(
        self, project_id: str, plan_or_actuals: str, version: str, plan: RevenueBaseline | RevenueActuals
    ) -> PublishResult:
        level = await self._level_for(plan.currency)
        totals: dict[str, Decimal] = {}
        for entry in plan.months:
            totals[entry.month] = totals.get(entry.month, Decimal(0)) + entry.amount
        other_version = (
            self._settings.actuals_version if plan_or_actuals == "Plan" else self._settings.plan_version
        )
        async with self._publish_lock:
            held_by_level, other_by_level = await asyncio.gather(
                self._figures(version, project_id), self._figures(other_version, project_id)
            )
            elsewhere = sorted((held_by_level.keys() | other_by_level.keys()) - {level})
            if elsewhere:
                currencies = await self._level_currencies()
                kept = ", ".join(sorted({currencies[name] for name in elsewhere}))
                raise VendorRejected(
                    VENDOR,
                    f"Adaptive Planning keeps project {project_id}'s figures in {kept}: a project keeps one "
                    f"currency, so a plan in currency {plan.currency} cannot be loaded",
                )
            held = held_by_level.get(level, {})
            # Months the model holds and the plan no longer has: a zero empties each.
            cleared = sorted(set(held) - set(totals))
            amounts = {**{month: Decimal(0) for month in cleared}, **totals}
            body = import_body(
                plan_or_actuals=plan_or_actuals,
                version=version,
                account=self._settings.revenue_account,
                level=level,
                dimension=self._settings.project_dimension,
                project=project_id,
                amounts=amounts,
            )
            answer = await self._call("importStandardData", body, failed_ok=True)
        failures = refusals(answer.messages, sorted(amounts))
        refused_plan = [failure for failure in failures if failure.month in totals]
        loaded = len(totals) - len(refused_plan)
        if not answer.success and not failures:
            raise self._refusal(answer)
        if loaded == 0:
            reasons = "; ".join(failure.message for failure in refused_plan[:3]) or answer.text()
            raise VendorRejected(
                VENDOR,
                f"Adaptive Planning loaded none of the {version} months"
                + (f": {reasons}" if reasons else ""),
            )
        task_id = f"adaptive-import-{uuid.uuid4().hex}"
        _log().info(
            "adaptive_published",
            vendor=VENDOR,
            project_id=project_id,
            version=version,
            task_id=task_id,
            rows_loaded=loaded,
            rows_failed=len(failures),
            months_cleared=len(cleared),
        )
        return PublishResult(
            task_id=task_id, rows_loaded=loaded, rows_failed=len(failures), failures=failures
        )

    # --- reads -----------------------------------------------------------------------------------------

    async def _figures(self, version: str, project_id: str) -> dict[str, dict[str, Decimal]]:
        """The project's figures in ``version`` by level, then by month (one export of every level)."""
        settings = self._settings
        body = export_body(
            version=version,
            account=settings.revenue_account,
            levels=self._levels,
            dimension=settings.project_dimension,
        )
        answer = await self._call("exportData", body)
        try:
            return figures_from_export(answer.output, settings.project_dimension, project_id)
        except ValueError as exc:
            raise VendorBadResponse(
                VENDOR, f"Adaptive Planning's exportData answer is unusable: {exc}"
            ) from None

    async def _level_currencies(self) -> dict[str, str]:
        """Each configured level's currency, read once with ``exportLevels``."""
        if self._currencies is not None:
            return self._currencies
        answer = await self._call("exportLevels")
        found = names_in(answer.output, "level")
        currencies: dict[str, str] = {}
        for name in self._levels:
            level = found.get(name)
            if level is None:
                raise self._misconfigured(f"the instance has no level named {name!r}")
            currency = (level.get("currency") or "").strip()
            if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
                raise VendorBadResponse(VENDOR, f"Adaptive Planning gave level {name!r} no usable currency")
            currencies[name] = currency
        self._currencies = currencies
        return currencies

    async def _level_for(self, currency: str) -> str:
        """The level a plan in ``currency`` is kept at; refused when that level keeps another currency."""
        level = self._settings.levels_by_currency.get(currency, self._settings.level)
        kept = (await self._level_currencies())[level]
        if kept != currency:
            raise VendorRejected(
                VENDOR,
                f"Adaptive Planning keeps level {level!r} in {kept}: a plan in currency {currency} cannot be "
                f"loaded there (STRATUM_ADAPTIVE__LEVELS_BY_CURRENCY names a level for each currency)",
            )
        return level

    async def check(self) -> list[Check]:
        """Log in and find the configured versions, account, level and dimension, as publishing and reading
        the forecast use them."""
        settings = self._settings
        versions = names_in((await self._call("exportVersions")).output, "version")
        accounts = names_in((await self._call("exportAccounts")).output, "account", "code")
        levels = names_in((await self._call("exportLevels")).output, "level")
        dimensions = names_in((await self._call("exportDimensions")).output, "dimension")
        wanted = (
            ("version", settings.plan_version, versions, "PLAN_VERSION"),
            ("version", settings.actuals_version, versions, "ACTUALS_VERSION"),
            ("account", settings.revenue_account, accounts, "REVENUE_ACCOUNT"),
            ("level", settings.level, levels, "LEVEL"),
            *(("level", name, levels, "LEVELS_BY_CURRENCY") for name in settings.levels_by_currency.values()),
            ("dimension", settings.project_dimension, dimensions, "PROJECT_DIMENSION"),
        )
        return [
            Check(
                vendor=VENDOR,
                what=f"{kind} {name!r}",
                fix=None
                if name in found
                else f"the instance has no {kind} {name!r}: set STRATUM_ADAPTIVE__{env}",
            )
            for kind, name, found, env in wanted
        ]

    # --- the call --------------------------------------------------------------------------------------

    async def _call(self, method: str, body: str = "", *, failed_ok: bool = False) -> AdaptiveAnswer:
        """One XML API call. Every call is safe to repeat (exports read; an import overwrites the same cells
        with the same figures), so each is retried as the shared client retries safe calls."""
        settings = self._settings
        document = call_document(
            method,
            caller_name=settings.caller_name,
            login=settings.login,
            password=settings.password,
            instance_code=settings.instance_code,
            body=body,
        )
        response = await self._http.send(
            "POST", self._endpoint, content=document, headers=_HEADERS, idempotent=True
        )
        try:
            answer = parse_answer(response.content)
        except ValueError as exc:
            raise VendorBadResponse(
                VENDOR, f"Adaptive Planning sent an unusable {method} answer: {exc}"
            ) from None
        if not answer.success and not failed_ok:
            raise self._refusal(answer)
        if not answer.success and self._failure_is_the_calls(answer):
            raise self._refusal(answer)
        return answer

    @staticmethod
    def _failure_is_the_calls(answer: AdaptiveAnswer) -> bool:
        """Whether a failed import failed as a whole (credentials, settings) rather than row by row."""
        return any(_is_credentials(key) or _is_misconfigured(key) for key, _ in answer.messages)

    def _refusal(self, answer: AdaptiveAnswer) -> VendorError:
        keys = [key for key, _ in answer.messages]
        text = answer.text()
        if any(_is_credentials(key) for key in keys):
            # Adaptive's words only: the request (and so the password) never goes into an error.
            return VendorUnavailable(
                VENDOR, f"Adaptive Planning refused the credentials of {self._settings.login!r}"
            )
        if any(_is_misconfigured(key) for key in keys):
            return self._misconfigured(text or "the instance refused a setting")
        return VendorRejected(VENDOR, f"Adaptive Planning refused the call: {text or 'no reason given'}")

    @staticmethod
    def _misconfigured(message: str) -> VendorBadResponse:
        return VendorBadResponse(VENDOR, f"{message} (check the Adaptive Planning settings)")

    def _error_for_response(self, response: httpx.Response) -> VendorError:
        status = response.status_code
        if status == 429:
            return VendorUnavailable(
                VENDOR,
                "Adaptive Planning is limiting our calls (HTTP 429)",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status == 404:
            return self._misconfigured(f"Adaptive Planning has no endpoint {response.request.url.path}")
        return default_error_for_response(VENDOR, response)


def _is_credentials(key: str) -> bool:
    return "authentication" in key or "credential" in key or "login" in key


def _is_misconfigured(key: str) -> bool:
    return any(part in key for part in _MISCONFIGURED)
