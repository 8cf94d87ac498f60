"""What the workflows tell the FP&A system: a won deal's revenue baseline (project activation) and a
project's invoiced revenue as actuals (a project's billing run).

A publish replaces the project's figures of that kind in the FP&A system (``system_apis.fpa.port``), so it
is idempotent by content: the step's write key carries a digest of the figures, so a retry or a recovery
after a lost answer sends the same figures under the same key (the gateway answers it from its record, or
the FP&A system loads the same figures again), and figures that changed in between go out under a new key.

**Planning never blocks delivery or billing.** The step is the last of its workflow, after the project is
set up (or the invoice issued and announced), and it does not park the run:

- the FP&A system down, slow or answering badly: the step is retried under the saga rules (durable backoff,
  ``Retry-After`` honoured) for the retry window, so an outage of minutes is ridden out and the run
  completes once the FP&A system is back;
- a refusal (a currency the FP&A model does not plan the project in, months outside its calendar), or the
  retry window spent: the run **completes** with the issue in its result (``fpa``: ``published: false``, the
  owner, finance, and the remediation) and a ``fpa_publish_not_done`` warning line. Parking would put a
  delivered project (or an issued invoice) in the exception queue, where a cancel would undo it for the
  sake of a plan; the next publish (a project's next billing run sends all its invoiced months) catches
  the FP&A system up;
- months the FP&A system refused while it loaded the others: ``published: true`` with the refused months
  in the issue.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from apis.logging import get_logger
from contracts.models import PublishResult, RevenueActuals, RevenueBaseline
from contracts.models.process import Owner
from process_apis.saga import Saga, StepFailure

__all__ = ["PlanningOutcome", "publish_to_fpa"]

log = get_logger("stratum.process.planning")

Plan = RevenueBaseline | RevenueActuals


class PlanningOutcome(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """What a run's FP&A step did, in the run's result (``fpa``)."""

    kind: str  # "baseline" or "actuals"
    project_id: str  # the id the FP&A system keeps the figures under (the ERP project, else the PSA one)
    published: bool
    months: list[str] = []
    rows_loaded: int = 0
    rows_failed: int = 0
    # Set when something is left for a person: the refusal, or the months the FP&A system refused.
    issue: dict[str, Any] | None = None
    # Why nothing was sent (e.g. a deal with no amount to plan).
    skipped: str | None = None


class _Published(msgspec.Struct, kw_only=True, frozen=True):
    """The step's checkpointed outcome."""

    months: list[str] = []
    result: PublishResult | None = None


def _digest(plan: Plan) -> str:
    return hashlib.sha256(msgspec.json.encode(plan)).hexdigest()[:16]


async def publish_to_fpa(
    saga: Saga,
    step: str,
    *,
    kind: str,
    project_id: str,
    make: Callable[[], Awaitable[Plan | None]],
    send: Callable[[Plan, str], Awaitable[PublishResult]],
    remediation: str,
) -> PlanningOutcome:
    """Run ``step``: ``make`` the figures (None: nothing to publish), ``send`` them with the write key; its
    outcome, never a parked run (see the module's docstring)."""

    async def action() -> _Published:
        plan = await make()
        if plan is None:
            return _Published()
        result = await send(plan, saga.key(f"{step}.{_digest(plan)}"))
        return _Published(months=sorted({m.month for m in plan.months}), result=result)

    outcome = await saga.try_step(step, action, result_type=_Published)
    if isinstance(outcome, StepFailure):
        issue: dict[str, Any] = {
            "owner": Owner.FINANCE.value,
            "code": outcome.code,
            "message": outcome.message,
            "remediation": remediation
            if outcome.kind == "business"
            else f"The FP&A system kept failing for the retry window ({outcome.attempts} attempts). "
            + remediation,
        }
        log.warning(
            "fpa_publish_not_done",
            step=step,
            kind=kind,
            fpa_project_id=project_id,
            code=outcome.code,
            failure=outcome.kind,
        )
        return PlanningOutcome(kind=kind, project_id=project_id, published=False, issue=issue)
    if outcome.result is None:
        return PlanningOutcome(
            kind=kind, project_id=project_id, published=False, skipped="no figures to publish"
        )
    result = outcome.result
    refused: dict[str, Any] | None = None
    if result.rows_failed:
        refused = {
            "owner": Owner.FINANCE.value,
            "code": "fpa-months-refused",
            "message": f"The FP&A system refused {result.rows_failed} month(s) and loaded the others.",
            "remediation": remediation,
            "failures": [msgspec.to_builtins(f) for f in result.failures],
        }
        log.warning("fpa_months_refused", step=step, fpa_project_id=project_id, refused=result.rows_failed)
    return PlanningOutcome(
        kind=kind,
        project_id=project_id,
        published=True,
        months=outcome.months,
        rows_loaded=result.rows_loaded,
        rows_failed=result.rows_failed,
        issue=refused,
    )
