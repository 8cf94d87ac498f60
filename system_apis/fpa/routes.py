"""System API routes for the FP&A domain: publish a project's revenue baseline and actuals, read its forecast.

A publish replaces the project's figures of that kind in the FP&A system, so it is idempotent twice over:
the gateway's Idempotency-Key replays an answer, and publishing the same figures again leaves the same
figures."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.di import NamedDependency
from litestar.params import JSONBody, SkipValidation

from apis.problems import FieldError, ProblemError
from apis.routing import VENDOR_ERRORS, operation
from contracts.models import Forecast, PublishResult, RevenueActuals, RevenueBaseline
from system_apis.fpa.port import FpaPort
from system_apis.params import RecordIdPath

__all__ = ["fpa_routes"]

Fpa = NamedDependency[SkipValidation[FpaPort]]
Id = Annotated[str, RecordIdPath]
_TAGS = ["fpa"]


class _RawMonth(msgspec.Struct):
    amount: Any = None


class _RawPlan(msgspec.Struct):
    months: list[_RawMonth] = []


async def _amounts_are_strings(request: Request[Any, Any, Any]) -> None:
    """422 for an amount sent as a JSON number. msgspec reads a number into a Decimal without loss, but the
    contract says money is a decimal string, and a number in one client's JSON is a float in the next's."""
    try:
        plan = msgspec.json.decode(await request.body(), type=_RawPlan)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return  # the body already matched the contract's shape; nothing more to say
    errors = [
        FieldError(location="body", field=f"months[{index}].amount", message="Expected a decimal string")
        for index, entry in enumerate(plan.months)
        if not isinstance(entry.amount, str)
    ]
    if errors:
        raise ProblemError(
            "validation-failed", 'Amounts are decimal strings such as "1234.50".', errors=errors[:20]
        )


_PUBLISHED = (
    "200 with what was loaded: `rows_loaded` months, and in `failures` each month the FP&A system refused "
    "(the others are loaded; fix them and publish again). 422 `vendor-rejected` when it loaded none."
)


@operation(
    "PUT",
    "/system/v1/fpa/projects/{project_id:str}/revenue-baseline",
    operation_id="publishRevenueBaseline",
    summary="Publish a project's monthly revenue baseline",
    description="Replaces the project's whole baseline: months left out are no longer planned. " + _PUBLISHED,
    scopes=["system:write"],
    errors=[*VENDOR_ERRORS],
    idempotency="required",
    status_code=200,
    tags=_TAGS,
)
async def publish_revenue_baseline(
    request: Request[Any, Any, Any], project_id: Id, data: JSONBody[RevenueBaseline], fpa: Fpa
) -> PublishResult:
    await _amounts_are_strings(request)
    return await fpa.publish_baseline(project_id, data)


@operation(
    "PUT",
    "/system/v1/fpa/projects/{project_id:str}/actuals",
    operation_id="publishRevenueActuals",
    summary="Publish a project's monthly revenue actuals",
    description="Replaces the project's actuals; a month with an actual forecasts that actual. " + _PUBLISHED,
    scopes=["system:write"],
    errors=[*VENDOR_ERRORS],
    idempotency="required",
    status_code=200,
    tags=_TAGS,
)
async def publish_revenue_actuals(
    request: Request[Any, Any, Any], project_id: Id, data: JSONBody[RevenueActuals], fpa: Fpa
) -> PublishResult:
    await _amounts_are_strings(request)
    return await fpa.publish_actuals(project_id, data)


@operation(
    "GET",
    "/system/v1/fpa/projects/{project_id:str}/forecast",
    operation_id="getRevenueForecast",
    summary="Read a project's current revenue forecast",
    description="Per month: the actual where the month has one, else the baseline (`source` says which). "
    "404 when the FP&A system has no figures for the project.",
    scopes=["system:read"],
    errors=[404, *VENDOR_ERRORS],
    tags=_TAGS,
)
async def get_revenue_forecast(project_id: Id, fpa: Fpa) -> Forecast:
    return await fpa.get_forecast(project_id)


fpa_routes = [publish_revenue_baseline, publish_revenue_actuals, get_revenue_forecast]
