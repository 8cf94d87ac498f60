"""Stratum's saga rules on top of DBOS durable workflows.

DBOS checkpoints every step's outcome, so a run that a crash interrupts resumes where it was, on any worker.
On top of that this module adds what a business workflow needs:

- a step that fails *transiently* (a vendor or tier unavailable, a timeout, a bad answer) is tried again
  after a durable, jittered exponential backoff (capped, honouring ``Retry-After``, so an open circuit
  breaker's cooldown is waited out rather than spent on attempts) for as long as the retry *window* lasts
  (minutes: a vendor's blip or short outage is ridden out); every attempt is a checkpoint, so the timeline
  shows them;
- a step that breaks a *business rule* parks the run as an **exception** with an owner, a plain-language
  remediation and the data involved; one that keeps failing technically for the whole window parks it as a
  **dead letter**: a person is needed, not a blip;
- a parked run waits (durably, holding nothing but a waiting task) for a person to **replay** it (the failed
  step runs again, with the data fixed) or **cancel** it (the compensations of the completed steps run in
  reverse);
- every vendor write a step makes uses ``saga.key(step)``: derived from the run, the step and the replay
  generation, so a retry or a crash-recovery reuses the key, and a replay after a refused write does not get
  the refusal replayed by the gateway's idempotency record.

Every call a step makes names the run and the client that started it (``apis.context.run_var``), so the
called tier logs them and charges the workflows' budget; every line the run logs carries ``run_id``,
``correlation_id`` (the request being served: the start, or the replay or cancel that resumed the run) and
``run_correlation_id`` (the start's, always).

Workflow code must be deterministic between checkpoints: everything that talks to the outside world goes
through ``Saga.step`` (or a DBOS primitive), and decisions depend only on step outputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import dbos._dbos as dbos_internals  # the instance's system database, to look for control messages
import msgspec
import sqlalchemy as sa
import structlog
from dbos import DBOS

from apis.context import RunContext, access_var, correlation_id_var, run_var
from apis.logging import get_logger
from apis.problems import ProblemError
from apis.state import StateStoreUnavailable
from contracts.models.process import Owner, RunState, Workflow
from process_apis.metrics import STEP_SECONDS, record_run_transition

__all__ = [
    "CONTROL_CHECK",
    "CONTROL_IN_STEP",
    "CONTROL_TOPIC",
    "FPA_PUBLISHING",
    "BusinessRuleViolation",
    "RunCancelled",
    "RunSignals",
    "Saga",
    "StepFailure",
    "WorkflowServices",
    "backoff_delay",
    "classify",
    "install_services",
    "run_signals",
    "services",
]

T = TypeVar("T")
log = get_logger("stratum.workflows")

CONTROL_TOPIC = "stratum.control"
# The run attribute, written when a run is started, saying how it checks for a cancel before each step.
CONTROL_CHECK = "control_check"
CONTROL_IN_STEP = "in-step"
# The run attribute, written when a run is started, saying it publishes to the FP&A system (activation: the
# revenue baseline; a project's billing: its actuals). A step added to a workflow runs only in runs started
# with the attribute that announces it: a run started before the step existed keeps the steps it began with,
# so its checkpoints (DBOS numbers a run's steps in order) still line up when it is recovered or replayed.
FPA_PUBLISHING = "fpa_publishing"
# A parked run wakes up at least this often (an idle wait is a checkpoint, nothing more).
_PARKED_WAIT_SECONDS = 24 * 3600

# Problems that say "try again later": the system of record may answer next time.
_TRANSIENT_CODES = frozenset(
    {
        "vendor-unavailable",
        "vendor-timeout",
        "vendor-bad-response",
        "tier-unavailable",
        "rate-limited",
        "idempotency-in-flight",
    }
)


class WorkflowServices:
    """What workflow steps use: the system tier's typed client, the event publisher, the retry policy."""

    def __init__(self, *, system: Any, events: Any, settings: Any) -> None:
        self.system = system
        self.events = events
        self.settings = settings
        # Set by the engine: whether a run a request starts here may execute here at once, without the
        # queue (the embedded run database: this process is its only worker).
        self.starts_here = False


_services: WorkflowServices | None = None


def install_services(value: WorkflowServices | None) -> None:
    """Set by the engine when it launches: DBOS workflows are process-wide functions, not objects."""
    global _services
    _services = value


def services() -> WorkflowServices:
    if _services is None:
        raise RuntimeError("workflow services are not installed: the workflow engine has not started")
    return _services


_PARKED_STATES = frozenset({RunState.EXCEPTION, RunState.DEAD_LETTER})


class RunSignals:
    """Wakes the requests waiting on a run (``Prefer: wait``) when the run changes in this process.

    A run executing here says so when it parks, and when its task ends (DBOS has then recorded the
    outcome), so a waiter reads the run again at once instead of every few tens of milliseconds. What a
    waiter is woken for it reads from the run database, as it would by polling: the signal carries
    nothing. Runs executing in another process (a worker of a PostgreSQL fleet) send no signal here; their
    waiters keep polling."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._local: set[str] = set()

    def executing_here(self, run_id: str) -> bool:
        return run_id in self._local

    @property
    def executing(self) -> int:
        """How many runs are executing in this process."""
        return len(self._local)

    def notify(self, run_id: str) -> None:
        for event in self._waiting.get(run_id, ()):
            event.set()

    @contextlib.contextmanager
    def watch(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``run_id`` changes here, for the length of the block."""
        event = asyncio.Event()
        self._waiting.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._waiting.get(run_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiting[run_id]

    def started(self, run_id: str) -> None:
        """Called by the run's workflow in its own task: signal when that task ends."""
        task = asyncio.current_task()
        if task is None or run_id in self._local:
            return
        self._local.add(run_id)

        def ended(_: object) -> None:
            self._local.discard(run_id)
            self.notify(run_id)

        task.add_done_callback(ended)


run_signals = RunSignals()


class BusinessRuleViolation(Exception):
    """Raised by a step when the data breaks a business rule: a person must fix it, a retry will not."""

    def __init__(
        self,
        message: str,
        *,
        owner: Owner,
        remediation: str,
        code: str = "business-rule",
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.owner = owner
        self.remediation = remediation
        self.code = code
        self.data = data or {}


class RunCancelled(Exception):
    """Someone cancelled the run: compensate what was done, then stop."""


class StepFailure(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A failed attempt, as checkpointed (so a recovered run decides exactly as the first time)."""

    kind: str  # "transient" or "business"
    code: str
    message: str
    owner: Owner | None = None
    remediation: str | None = None
    data: dict[str, Any] = {}
    retry_after: float | None = None
    # How long the step was tried, and how often, before it was given up (not checkpointed: derived).
    attempts: int = 0
    elapsed_seconds: float = 0.0


def classify(exc: BaseException) -> StepFailure:
    if isinstance(exc, BusinessRuleViolation):
        return StepFailure(
            kind="business",
            code=exc.code,
            message=exc.message,
            owner=exc.owner,
            remediation=exc.remediation,
            data=exc.data,
        )
    if isinstance(exc, StateStoreUnavailable):
        # Redis is down (say, a step publishing an event): an outage like a vendor's, tried again later.
        return StepFailure(
            kind="transient",
            code="state-store-unavailable",
            message=str(exc),
            retry_after=exc.retry_after_seconds,
        )
    if isinstance(exc, ProblemError):
        code = exc.kind.code
        detail = exc.problem_detail or exc.kind.title
        if code in _TRANSIENT_CODES:
            retry_after = exc.extra_members.get("retry_after") or (exc.headers or {}).get("Retry-After")
            try:
                seconds = float(retry_after) if retry_after is not None else None
            except (TypeError, ValueError):
                seconds = None
            return StepFailure(kind="transient", code=code, message=detail, retry_after=seconds)
        # A refusal by the system of record (or a record that is not there) is the data's fault.
        return StepFailure(kind="business", code=code, message=detail, data=dict(exc.extra_members))
    # Anything else (a bug, a refused token) is retried like an outage, then dead-lettered for a person.
    return StepFailure(kind="transient", code="internal", message=f"{type(exc).__name__}: {exc}")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Saga:
    """One run's saga state, held by its workflow function for the length of one execution."""

    def __init__(self, workflow: Workflow, *, subject: str, correlation_id: str | None = None) -> None:
        run_id = DBOS.workflow_id
        if run_id is None:
            raise RuntimeError("a Saga lives inside a DBOS workflow")
        # The run's task carries the correlation id of the request that started it (or its own id), so
        # every call it makes, every log line and every event it publishes can be traced back.
        self.correlation_id = correlation_id or run_id
        correlation_id_var.set(self.correlation_id)
        # No request's caller: the run acts for the client that started it (read before the first step).
        access_var.set(None)
        run_var.set(RunContext(run_id, None, self.correlation_id))
        structlog.contextvars.bind_contextvars(
            correlation_id=self.correlation_id, run_correlation_id=self.correlation_id, run_id=run_id
        )
        self.run_id: str = run_id
        run_signals.started(run_id)
        self.workflow = workflow
        self.subject = subject
        self.generation = 0
        self.policy = services().settings
        self._compensations: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self._state: RunState | None = None
        self._starter_known = False
        # Whether the cancel check is made inside each step (runs started with CONTROL_IN_STEP) or, for runs
        # started before it existed, as a recv before each step: a run keeps the checks it started with, or
        # its checkpoints would no longer line up when it is recovered.
        self._control_in_step = False
        # The attributes the run was started with (read with the starter, never changed after the start).
        self._started_with: dict[str, Any] = {}

    # -- keys and state -----------------------------------------------------------------------------------

    def key(self, step: str) -> str:
        """The idempotency key of a vendor write made by ``step``; stable across retries and recoveries."""
        return f"{self.run_id}.{step}.g{self.generation}"

    async def started_with(self, attribute: str) -> bool:
        """Whether the run was started with ``attribute`` set (e.g. ``FPA_PUBLISHING``): plain data written
        at the start, so a recovered run answers as its first execution did, and no checkpoint is made."""
        await self._know_starter()
        return bool(self._started_with.get(attribute))

    async def set_state(self, state: RunState, **attributes: Any) -> None:
        """Record the run's state (and what goes with it) in its workflow attributes."""
        previous = self._state
        self._state = state
        await DBOS.update_workflow_attributes_async(
            self.run_id, {"state": state.value, **attributes}, merge=True
        )
        if state in _PARKED_STATES:
            # What a waiter waits for: a parked run, or (signalled when its task ends) a finished one.
            run_signals.notify(self.run_id)
        if previous != state:
            record_run_transition(self.workflow.value, state.value)

    # -- steps ---------------------------------------------------------------------------------------------

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[T]],
        *,
        result_type: type[T],
        owner: Owner,
        remediation: str,
        cancellable: bool = True,
    ) -> T:
        """Run ``action`` as a checkpointed step under the saga rules; its value, once it succeeded.

        ``owner`` and ``remediation`` say who fixes a refusal by the system of record and how (a
        ``BusinessRuleViolation`` raised by the action brings its own)."""
        while True:
            outcome = await self.try_step(name, action, result_type=result_type, cancellable=cancellable)
            if not isinstance(outcome, StepFailure):
                return outcome
            if await self.park(name, outcome, owner=owner, remediation=remediation) == "cancel":
                if not cancellable:
                    continue  # a compensation that is cancelled is tried again: it must finish
                raise RunCancelled

    async def try_step(
        self,
        name: str,
        action: Callable[[], Awaitable[T]],
        *,
        result_type: type[T],
        cancellable: bool = True,
    ) -> T | StepFailure:
        """Like ``step``, but a failure that needs a person (a business rule, or retries exhausted) is
        returned instead of parking the run, for workflows that gather several before parking once."""
        await self._know_starter()
        attempt = 0
        first_started: float | None = None
        waited = 0.0
        while True:
            if cancellable and not self._control_in_step:
                await self._check_cancel()
            attempt += 1
            watch = self.run_id if cancellable and self._control_in_step else None
            outcome = await DBOS.run_step_async(
                {"name": name}, _attempt, self.workflow.value, name, action, watch
            )
            if "control" in outcome:
                # A control message was waiting, so the step did not run: take it (a recorded recv), and stop
                # for a cancel; anything else is dropped, as the check before each step always did.
                attempt -= 1
                await self._check_cancel()
                continue
            if "ok" in outcome:
                if self._state not in (RunState.RUNNING, RunState.COMPENSATING):
                    await self.set_state(
                        RunState.RUNNING if cancellable else RunState.COMPENSATING, retrying=None
                    )
                return msgspec.convert(outcome["ok"], result_type, strict=False)
            failure = msgspec.convert(outcome["failure"], StepFailure)
            # Wall-clock times come from the checkpointed outcome, so a recovered run decides as the first
            # did (a checkpoint from before they were recorded counts the backoff waited instead).
            if first_started is None:
                first_started = outcome.get("started")
            at = outcome.get("at")
            elapsed = at - first_started if at is not None and first_started is not None else waited
            if failure.kind == "transient" and self._may_retry(attempt, elapsed):
                delay = backoff_delay(self.policy, f"{self.run_id}:{name}", attempt, failure.retry_after)
                await self.set_state(
                    RunState.RETRYING,
                    retrying={
                        "step": name,
                        "attempt": attempt,
                        "code": failure.code,
                        "error": failure.message,
                        "next_attempt_in_seconds": round(delay, 3),
                    },
                )
                await DBOS.sleep_async(delay)
                waited += delay
                continue
            return msgspec.structs.replace(failure, attempts=attempt, elapsed_seconds=round(elapsed, 3))

    def compensate_with(self, name: str, undo: Callable[[], Awaitable[Any]]) -> None:
        """Register what undoes a completed step, should the run be cancelled."""
        self._compensations.append((name, undo))

    async def compensate(self) -> list[str]:
        """Undo the completed steps, last first; each undo is a step with the same retry rules."""
        await self.set_state(RunState.COMPENSATING, issue=None)
        done: list[str] = []
        for name, undo in reversed(self._compensations):
            await self.step(
                f"compensate.{name}",
                undo,
                result_type=object,
                owner=Owner.INTEGRATION_OPERATIONS,
                remediation="Undo this step by hand in its system, then replay the run to finish cancelling.",
                cancellable=False,
            )
            done.append(name)
        self._compensations.clear()
        return done

    async def finish(self, state: RunState, result: dict[str, Any]) -> dict[str, Any]:
        await self.set_state(state, result=result, issue=None, retrying=None)
        return result

    # -- internals -----------------------------------------------------------------------------------------

    async def _check_cancel(self) -> None:
        message = await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=0)
        if isinstance(message, dict) and message.get("action") == "cancel":
            self._resumed_by(message)
            raise RunCancelled

    def _may_retry(self, attempt: int, elapsed: float) -> bool:
        """A transient failure is tried again until the retry window has passed (or the optional attempt
        cap is reached): the window, not a count, is what rides out a vendor's minute-long outage."""
        cap = self.policy.step_max_attempts
        if cap is not None and attempt >= cap:
            return False
        return elapsed < float(self.policy.step_retry_window_seconds)

    async def _know_starter(self) -> None:
        """Learn which client started the run, so the calls its steps make are made on its behalf, and
        how it checks for a cancel (``CONTROL_CHECK``).

        ``started_by`` is written when the run is enqueued and never changes, so reading it again on a
        recovery gives the same answer: it is read as plain data, not as a checkpoint (a checkpoint here
        would shift the steps of runs started before it existed). Read even for a run this process has just
        started: two callers starting one run at once each hold their own attributes, and only the run
        database knows whose start won."""
        if self._starter_known:
            return
        self._starter_known = True
        wait = 0.1
        while True:
            try:
                # Outside the workflow's DBOS context (a fresh context), the read is not recorded as a step.
                status = await asyncio.create_task(
                    DBOS.get_workflow_status_async(self.run_id), context=contextvars.Context()
                )
                break
            except Exception as exc:
                # Read again until it answers, as DBOS's own calls are: how the run checks for a cancel
                # depends on it, and must be what it was when the run was first executed.
                log.warning("run_attributes_unread", error=repr(exc), retry_in_seconds=wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 5.0)
        attributes = getattr(status, "attributes", None) or {}
        self._started_with = dict(attributes)
        self._control_in_step = attributes.get(CONTROL_CHECK) == CONTROL_IN_STEP
        started_by = attributes.get("started_by")
        if isinstance(started_by, str) and started_by:
            run_var.set(RunContext(self.run_id, started_by, self.correlation_id))
            structlog.contextvars.bind_contextvars(on_behalf_of=started_by)

    def _resumed_by(self, message: dict[str, Any]) -> None:
        """A replay or cancel resumed the run: from here its calls and lines carry that request's
        correlation id as ``correlation_id``, and still the start's as ``run_correlation_id``."""
        correlation_id = message.get("correlation_id")
        if isinstance(correlation_id, str) and correlation_id:
            correlation_id_var.set(correlation_id)
            structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        log.info("run_resumed", action=message.get("action"), by=message.get("by"))

    async def park(self, step: str, failure: StepFailure, *, owner: Owner, remediation: str) -> str:
        """Park the run (exception or dead letter) until someone replays or cancels it; which they did.

        A replay moves to the next generation, so the failed step's writes get fresh idempotency keys."""
        if failure.kind == "business":
            state = RunState.EXCEPTION
            issue_owner = failure.owner or owner
            issue_remediation = failure.remediation or remediation
        else:
            state = RunState.DEAD_LETTER
            issue_owner = Owner.INTEGRATION_OPERATIONS
            issue_remediation = (
                f"{failure.message}. The step kept failing for {_duration(failure.elapsed_seconds)} "
                f"({failure.attempts} attempts). Fix the connection or the system, then replay the run; it "
                "resumes at this step."
            )
        issue = {
            "kind": state.value,
            "owner": issue_owner.value,
            "step": step,
            "code": failure.code,
            "message": failure.message,
            "remediation": issue_remediation,
            "data": failure.data,
            "raised_at": (await DBOS.run_step_async({"name": "clock"}, _utcnow_iso)),
        }
        await self.set_state(state, issue=issue, retrying=None)
        await self._publish_parked(step, state, issue)
        log.warning(
            "run_parked",
            run_id=self.run_id,
            step=step,
            state=state.value,
            owner=issue_owner.value,
            code=failure.code,
        )
        while True:
            message = await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=_PARKED_WAIT_SECONDS)
            if isinstance(message, dict) and message.get("action") in ("replay", "cancel"):
                action: str = message["action"]
                self._resumed_by(message)
                if action == "replay":
                    self.generation += 1
                    await self.set_state(RunState.RUNNING, issue=None, generation=self.generation)
                return action

    async def _publish_parked(self, step: str, state: RunState, issue: dict[str, Any]) -> None:
        from contracts.models.events import RUN_PARKED, RunParked, event_id

        event = RunParked(
            run_id=self.run_id,
            workflow=self.workflow.value,
            state="exception" if state == RunState.EXCEPTION else "dead_letter",
            owner=issue["owner"],
            step=step,
            reason=issue["message"],
        )
        ident = event_id(self.run_id, step, "parked", str(self.generation))

        async def publish() -> None:
            try:
                await services().events.publish(
                    event_id=ident, type=RUN_PARKED, subject=self.subject, data=event
                )
            except Exception as exc:  # the run is parked either way; its state says so
                log.warning("event_publish_failed", run_id=self.run_id, type=RUN_PARKED, error=repr(exc))

        await DBOS.run_step_async({"name": "publish.run_parked"}, publish)


def _utcnow_iso() -> str:
    return _utcnow().isoformat()


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds" if seconds >= 1 else f"{seconds:.2f} seconds"


def backoff_delay(policy: Any, seed: str, attempt: int, retry_after: float | None) -> float:
    """The wait before attempt ``attempt + 1``: full jitter under an exponential ceiling capped at
    ``step_backoff_max_seconds``, and at least the ``Retry-After`` the failure carried (an open circuit
    breaker's remaining cooldown), under the same cap. Seeded, so a recovered run waits the same."""
    maximum = float(policy.step_backoff_max_seconds)
    ceiling = min(maximum, float(policy.step_backoff_base_seconds) * 2 ** min(attempt - 1, 62))
    jitter = random.Random(f"{seed}:{attempt}").uniform(0, ceiling)  # noqa: S311
    return max(jitter, min(retry_after or 0.0, maximum))


def _control_waiting(run_id: str) -> bool:
    """Whether a control message (a cancel; a replay that came late) waits unread for the run.

    One read, recorded nowhere; what it finds is taken by a recv, which records it. DBOS has no call that
    looks without consuming, so this reads its notifications table the way its recv does (DBOS is pinned in
    constraints.txt; tests/process cover cancelling a running run)."""
    sys_db = dbos_internals._get_dbos_instance()._sys_db
    table = sys_db.tables.notifications
    query = (
        sa.select(table.c.topic)
        .where(
            *sys_db._wf(table, run_id, "destination_uuid"),
            table.c.topic == CONTROL_TOPIC,
            table.c.consumed == sa.false(),
        )
        .limit(1)
    )
    with sys_db.engine.connect() as conn:
        return conn.execute(query).first() is not None


async def _attempt(
    workflow: str, name: str, action: Callable[[], Awaitable[Any]], control_of: str | None = None
) -> dict[str, Any]:
    """One attempt of a step. Failures are returned, not raised, so DBOS checkpoints them as data.

    With ``control_of`` (a run id) the attempt first looks for a control message waiting for that run, and
    when there is one returns that instead of running the action: the check before a step is part of the
    step's checkpoint, so a recovered run decides as the first execution did, at the cost of one read
    instead of the four round trips and two writes of a recv with a timeout."""
    if control_of is not None and await asyncio.to_thread(_control_waiting, control_of):
        return {"control": True}
    started = time.perf_counter()
    started_at = time.time()
    try:
        value = await action()
    except Exception as exc:
        failure = classify(exc)
        STEP_SECONDS.labels(workflow, name, failure.kind).observe(time.perf_counter() - started)
        if failure.code == "internal":
            log.exception("step_error", step=name)
        else:
            log.info("step_failed", step=name, kind=failure.kind, code=failure.code)
        # Wall-clock times, checkpointed with the failure: what the retry window is measured with.
        return {"failure": msgspec.to_builtins(failure), "started": started_at, "at": time.time()}
    STEP_SECONDS.labels(workflow, name, "ok").observe(time.perf_counter() - started)
    return {"ok": msgspec.to_builtins(value)}
