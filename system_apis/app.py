"""The system tier app (``/system/v1``): canonical objects over the vendor adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request, Response
from litestar.di import Provide

from apis.logging import get_logger
from apis.plugin import GovernancePlugin, TierSpec
from apis.problems import ProblemError, handle_http_exception
from system_apis.budgets import RedisCounters, VendorBudgets, budget_routes
from system_apis.crm.routes import crm_routes
from system_apis.erp.routes import erp_routes
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorError,
    VendorRejected,
    VendorTimeout,
    VendorUnavailable,
)
from system_apis.fpa.routes import fpa_routes
from system_apis.psa.routes import psa_routes

if TYPE_CHECKING:
    from apis.runtime import Runtime
    from system_apis.bootstrap import Adapters

__all__ = ["SYSTEM_V1", "create_system_app", "vendor_error_to_problem"]

SYSTEM_V1 = TierSpec(
    name="system",
    version="v1",
    title="Stratum System API",
    description=(
        "Canonical customers, opportunities, projects, time, invoices and payments over the firm's CRM, "
        "PSA, ERP and FP&A systems. Vendor details never cross this contract."
    ),
)
log = get_logger("stratum.system")


def vendor_error_to_problem(exc: VendorError, *, write: bool = False) -> ProblemError:
    """The one mapping from the adapters' error tree to problems.

    A vendor refusing a *write* is about the caller's data (422 with the vendor's reason); refusing a
    *read* means our query is wrong, which the caller cannot fix (502)."""
    if isinstance(exc, NotFound):
        return ProblemError("not-found", exc.message)
    if isinstance(exc, VendorTimeout):
        return ProblemError(
            "vendor-timeout", f"{exc.vendor} did not answer in time.", extra={"vendor": exc.vendor}
        )
    if isinstance(exc, VendorUnavailable):
        retry_after = max(1, round(exc.retry_after)) if exc.retry_after else 5
        return ProblemError(
            "vendor-unavailable",
            f"{exc.vendor} is unavailable: {exc.message}",
            headers={"Retry-After": str(retry_after)},
            extra={"vendor": exc.vendor, "retry_after": retry_after},
        )
    if write and isinstance(exc, VendorRejected):
        return ProblemError("vendor-rejected", f"{exc.vendor}: {exc.message}", extra={"vendor": exc.vendor})
    # VendorRejected on a read and VendorBadResponse: the vendor and we disagree; the caller can't fix it.
    kind = "rejected" if isinstance(exc, VendorRejected) else "bad response"
    log.warning("vendor_error", vendor=exc.vendor, kind=kind, message=exc.message)
    if isinstance(exc, VendorBadResponse) and exc.record_id is not None:
        # One record the contract cannot carry: say which, so it can be corrected in the vendor.
        return ProblemError(
            "vendor-bad-response",
            f"{exc.vendor} record {exc.record_id} cannot be mapped to the contract: {exc.message}",
            extra={"vendor": exc.vendor, "record_id": exc.record_id},
        )
    return ProblemError(
        "vendor-bad-response",
        f"{exc.vendor} answered with an unusable response.",
        extra={"vendor": exc.vendor},
    )


def _handle_vendor_error(request: Request[Any, Any, Any], exc: VendorError) -> Response[bytes]:
    return handle_http_exception(request, vendor_error_to_problem(exc, write=request.method != "GET"))


def create_system_app(runtime: Runtime, *, adapters: Adapters) -> Litestar:
    def provide(value: object) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    # Vendor API budgets: shared across processes when the gateway state store is Redis, else this process's.
    redis_url = runtime.settings.redis_url
    budgets = VendorBudgets(
        runtime.settings,
        [adapters.crm, adapters.psa, adapters.erp, adapters.fpa],
        counters=RedisCounters(redis_url) if redis_url else None,
    )
    runtime.on_start(budgets.start)
    runtime.on_close(budgets.stop)
    return Litestar(
        route_handlers=[*crm_routes, *psa_routes, *erp_routes, *fpa_routes, *budget_routes],
        dependencies={
            "crm": provide(adapters.crm),
            "psa": provide(adapters.psa),
            "erp": provide(adapters.erp),
            "fpa": provide(adapters.fpa),
            "public_url": provide(runtime.settings.public_url),
            "vendor_budgets": provide(budgets),
        },
        exception_handlers={VendorError: _handle_vendor_error},
        plugins=[GovernancePlugin(SYSTEM_V1, runtime)],
    )
