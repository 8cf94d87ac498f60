"""How every role view is put together: declared sections, read concurrently, each failing on its own terms.

A view is a ``View``: a name and its ``Section``s. A section declares

- ``sources``: the tier calls it reads (``system:erp.invoices``, ``process:runs``), for the contract and for
  operations to see what a view depends on;
- ``required``: whether the view means anything without it. A required section that fails fails the view
  with a 503 ``source-unavailable`` problem naming the section and the cause; an optional one comes back
  with ``status: unavailable`` and the reason (``error.code``, ``error.detail``, ``error.source``) while
  the other sections are filled;
- ``timeout``: how long it may take, from the moment it can start. Past it the section is treated as down;
- ``after``: the sections whose values it needs (e.g. an invoice's lines before their time entries). It
  starts as soon as those are done; if one of them is unavailable, so is it.
- ``waits``: the sections whose values it needs only for part of its work. It starts at once, with the
  others, and its fetch awaits ``done.wait(name)`` where it needs the value, so its own independent reads
  run meanwhile (e.g. the FP&A export started while the deal that names one of its keys is read). If the
  section waited on is unavailable, so is the waiting one, with the same reason ``after`` gives. Its timeout
  counts from its start, the wait included.

``View.compose`` starts every section at once (or as soon as its ``after`` sections are done) and returns a
``Composed`` with each section's value or the reason it has none. The handler shapes the response from it;
it never calls a tier itself, so no view can serialise its sources by hand.

What a section's failure means:

- a problem the *caller* caused (an unknown id, a cursor we did not issue: any 4xx but 429) is answered as
  such, whichever section met it, since every section would see the same request;
- 429 (the caller's inner budget spent): an optional section is unavailable with ``rate-limited``; a required
  one passes the 429 on, with its Retry-After;
- anything a source or the network did (a 5xx problem, the tier unreachable, the section's timeout): as
  declared, unavailable or 503.

Any other exception is a bug and propagates: it is not a source being down.

Every view's answer carries ``Server-Timing`` (W3C): each section's own time, from the moment it could start,
and the composition's, so a caller (or ``bench/experience_views.py``) sees which source the view waited on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from apis.logging import get_logger
from apis.problems import ProblemError
from contracts.models.experience import SectionError, SectionRule, SectionStatus, ViewRules

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "Composed",
    "Section",
    "SectionFailure",
    "ServerTimingMiddleware",
    "View",
    "registered_views",
]

log = get_logger("stratum.experience.compose")

C = TypeVar("C")
S = TypeVar("S", bound=msgspec.Struct)

# A view's own deadline is its slowest section's; a section's default is under the tier clients' 15 s.
DEFAULT_TIMEOUT_SECONDS = 5.0
SOURCE_RETRY_AFTER_SECONDS = 5

_VIEWS: dict[str, View[Any]] = {}
# The Server-Timing entries of the request being answered (set by ServerTimingMiddleware, filled by compose).
_TIMINGS: ContextVar[list[str] | None] = ContextVar("stratum_view_timings", default=None)
# The section whose fetch is running (each section runs in its own task, so its own context): what
# ``Composed.wait`` checks a wait against.
_SECTION: ContextVar[Section[Any] | None] = ContextVar("stratum_view_section", default=None)


class SectionFailure(Exception):
    """Raised by a section's fetch to say its source cannot give what it needs (e.g. a listing too long
    to read whole), with the code and detail the section reports."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class _Blocked(Exception):
    """Raised by ``Composed.wait`` in a section's fetch: the section waited on is unavailable, so the
    waiting one is too (as if it were ``after`` it)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


@dataclass(frozen=True, slots=True)
class Section(Generic[C]):
    """One section of a view: where it reads, whether the view needs it, how long it may take.

    ``fetch(context, done)`` reads the section's sources; ``done`` holds the values of the sections named
    in ``after`` (``done.value(name)``), and gives those named in ``waits`` when they are done
    (``await done.wait(name)``)."""

    name: str
    sources: tuple[str, ...]
    fetch: Callable[[C, Composed], Awaitable[Any]]
    required: bool = False
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    after: tuple[str, ...] = ()
    description: str = ""
    waits: tuple[str, ...] = ()

    @property
    def on_down(self) -> Literal["fail", "unavailable"]:
        return "fail" if self.required else "unavailable"

    def rule(self) -> SectionRule:
        return SectionRule(
            name=self.name,
            sources=list(self.sources),
            required=self.required,
            timeout_ms=round(self.timeout * 1000),
            on_down=self.on_down,
            after=list(self.after),
            description=self.description or None,
            waits=list(self.waits),
        )


@dataclass(slots=True)
class _Outcome:
    value: Any = None
    error: SectionError | None = None
    cause: ProblemError | None = None
    elapsed: float = 0.0


@dataclass(slots=True)
class Composed:
    """Each section's value, or why it has none."""

    view: str
    outcomes: dict[str, _Outcome] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict, repr=False)

    async def wait(self, name: str) -> Any:
        """The value of section ``name`` once it is done, awaited from the fetch of a section that declared
        it in ``waits``; if it is unavailable, the waiting section is too (the reason ``after`` gives)."""
        current = _SECTION.get()
        if current is None or name not in current.waits:
            who = current.name if current is not None else "no section"
            raise ValueError(f"view {self.view}: {who} waits on {name} without declaring it in `waits`")
        await asyncio.shield(self.tasks[name])  # a waiter cancelled leaves the section it waits on running
        if not self.ok(name):
            raise _Blocked([name])
        return self.outcomes[name].value

    def ok(self, name: str) -> bool:
        outcome = self.outcomes.get(name)
        return outcome is not None and outcome.error is None

    def value(self, name: str) -> Any:
        """The section's value; only for a section that is ``ok`` (a required one always is)."""
        outcome = self.outcomes[name]
        if outcome.error is not None:
            raise LookupError(f"section {name} of {self.view} is unavailable")
        return outcome.value

    def value_or(self, name: str, default: Any) -> Any:
        return self.outcomes[name].value if self.ok(name) else default

    def error(self, name: str) -> SectionError | None:
        return self.outcomes[name].error

    def status(self, name: str) -> SectionStatus:
        return SectionStatus.OK if self.ok(name) else SectionStatus.UNAVAILABLE

    def section(self, name: str, cls: type[S], fill: Callable[[Any], Mapping[str, Any]]) -> S:
        """``cls(status=ok, **fill(value))`` when the section has its value, else ``cls(status=unavailable,
        error=...)``: the one way a view turns a section into its part of the answer."""
        if self.ok(name):
            return cls(status=SectionStatus.OK, **fill(self.outcomes[name].value))
        return cls(status=SectionStatus.UNAVAILABLE, error=self.outcomes[name].error)

    @property
    def unavailable(self) -> list[str]:
        return [name for name, outcome in self.outcomes.items() if outcome.error is not None]


def _caller_mistake(exc: ProblemError) -> bool:
    return 400 <= exc.kind.status < 500 and exc.kind.code != "rate-limited"


class View(Generic[C]):
    """A role view's declared composition. Creating one registers it (``registered_views``), so its rules
    are published at ``GET /experience/v1/views`` and in the operation's description."""

    def __init__(self, name: str, *, summary: str, sections: Iterable[Section[C]]) -> None:
        self.name = name
        self.summary = summary
        self.sections: tuple[Section[C], ...] = tuple(sections)
        names = [s.name for s in self.sections]
        if len(set(names)) != len(names):
            raise ValueError(f"view {name}: section names repeat")
        for index, section in enumerate(self.sections):
            # A section may only wait on one declared before it: no cycles, by construction.
            unknown = set(section.after) - set(names[:index])
            if unknown:
                raise ValueError(f"view {name}: section {section.name} is after unknown or later {unknown}")
            unknown = set(section.waits) - set(names[:index])
            if unknown:
                raise ValueError(f"view {name}: section {section.name} waits on unknown or later {unknown}")
        if name in _VIEWS:
            raise ValueError(f"view {name} is declared twice")
        _VIEWS[name] = self

    def rules(self) -> ViewRules:
        return ViewRules(name=self.name, summary=self.summary, sections=[s.rule() for s in self.sections])

    def describe(self) -> str:
        """The composition rules as the operation's contract states them."""
        lines = [
            "",
            "",
            "Sections (read concurrently; a section waits only for those it is after, and for those it waits "
            "on only where it needs their values):",
            "",
        ]
        for section in self.sections:
            needs = f", after {', '.join(section.after)}" if section.after else ""
            needs += f", waits on {', '.join(section.waits)}" if section.waits else ""
            down = (
                "the view fails with 503 `source-unavailable`"
                if section.required
                else "the section comes back `unavailable` with the reason"
            )
            need = "required" if section.required else "optional"
            lines.append(
                f"- `{section.name}` ({', '.join(section.sources)}; {need}, timeout {section.timeout:g} s"
                f"{needs}): when down, {down}."
            )
        return "\n".join(lines)

    async def compose(self, context: C) -> Composed:
        composed = Composed(view=self.name)
        tasks = composed.tasks

        def blocked_by(section: Section[C], blocked: list[str], elapsed: float = 0.0) -> _Outcome:
            return _Outcome(
                error=SectionError(
                    code="source-unavailable",
                    detail=f"needs section {', '.join(blocked)}, which is unavailable",
                    source=section.sources[0] if section.sources else None,
                ),
                elapsed=elapsed,
            )

        async def run(section: Section[C]) -> None:
            _SECTION.set(section)  # this task's own context
            for name in section.after:
                await tasks[name]
            blocked = [name for name in section.after if not composed.ok(name)]
            if blocked:
                composed.outcomes[section.name] = blocked_by(section, blocked)
                return
            started = time.perf_counter()
            try:
                async with asyncio.timeout(section.timeout):
                    value = await section.fetch(context, composed)
            except _Blocked as exc:
                elapsed = time.perf_counter() - started
                composed.outcomes[section.name] = blocked_by(section, exc.names, elapsed)
            except TimeoutError:
                error = SectionError(
                    code="source-timeout",
                    detail=f"{', '.join(section.sources)} did not answer within {section.timeout:g} s",
                    source=section.sources[0] if section.sources else None,
                )
                composed.outcomes[section.name] = _Outcome(error=error, elapsed=time.perf_counter() - started)
            except ProblemError as exc:
                if _caller_mistake(exc):
                    raise
                error = SectionError(
                    code=exc.kind.code,
                    detail=exc.problem_detail,
                    source=section.sources[0] if section.sources else None,
                    retry_after=_retry_after(exc),
                )
                composed.outcomes[section.name] = _Outcome(
                    error=error, cause=exc, elapsed=time.perf_counter() - started
                )
            except SectionFailure as exc:
                error = SectionError(
                    code=exc.code, detail=exc.detail, source=section.sources[0] if section.sources else None
                )
                composed.outcomes[section.name] = _Outcome(error=error, elapsed=time.perf_counter() - started)
            else:
                composed.outcomes[section.name] = _Outcome(value=value, elapsed=time.perf_counter() - started)

        began = time.perf_counter()
        for section in self.sections:
            tasks[section.name] = asyncio.ensure_future(run(section))
        try:
            await asyncio.gather(*tasks.values())
        except BaseException:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            raise
        _record_timings(self, composed, time.perf_counter() - began)
        for section in self.sections:
            outcome = composed.outcomes[section.name]
            if outcome.error is None:
                continue
            log.warning(
                "view_section_unavailable",
                view=self.name,
                section=section.name,
                required=section.required,
                code=outcome.error.code,
                detail=outcome.error.detail,
            )
            if section.required:
                raise _required_failed(self.name, section, outcome)
        return composed


def _record_timings(view: View[Any], composed: Composed, elapsed: float) -> None:
    timings = _TIMINGS.get()
    if timings is None:
        return
    for section in view.sections:
        outcome = composed.outcomes[section.name]
        timings.append(f"{section.name};dur={outcome.elapsed * 1000:.2f}")
    timings.append(f"view;dur={elapsed * 1000:.2f}")


class ServerTimingMiddleware(ASGIMiddleware):
    """Adds the composed view's ``Server-Timing`` to its answer: each section's time and the view's."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        timings: list[str] = []
        token = _TIMINGS.set(timings)

        async def with_timings(message: Message) -> None:
            if message["type"] == "http.response.start" and timings:
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"server-timing", ", ".join(timings).encode()),
                ]
            await send(message)

        try:
            await next_app(scope, receive, with_timings)
        finally:
            _TIMINGS.reset(token)


def _retry_after(exc: ProblemError) -> int | None:
    value = exc.extra_members.get("retry_after")
    if isinstance(value, int):
        return value
    header = exc.headers.get("Retry-After") if exc.headers else None
    return int(header) if header and header.isdigit() else None


def _required_failed(view: str, section: Section[Any], outcome: _Outcome) -> ProblemError:
    assert outcome.error is not None
    if outcome.cause is not None and outcome.cause.kind.code == "rate-limited":
        return outcome.cause  # the caller's own budget: its 429 and Retry-After, not an outage
    retry_after = outcome.error.retry_after or SOURCE_RETRY_AFTER_SECONDS
    return ProblemError(
        "source-unavailable",
        f"The {view} view needs its `{section.name}` section ({', '.join(section.sources)}): "
        f"{outcome.error.code}: {outcome.error.detail or 'no detail'}",
        headers={"Retry-After": str(retry_after)},
        extra={"retry_after": retry_after, "section": section.name, "source_code": outcome.error.code},
    )


def registered_views() -> list[View[Any]]:
    return [_VIEWS[name] for name in sorted(_VIEWS)]
