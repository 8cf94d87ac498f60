"""Per-request context carried in contextvars, so outbound calls can pass it on without threading it
through every function: the correlation id, the authenticated caller, and the workflow run a call is made
for (set by the saga in the run's task)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from apis.security import AccessContext

__all__ = [
    "RunContext",
    "access_var",
    "correlation_id_var",
    "current_access",
    "current_correlation_id",
    "current_run",
    "run_var",
]


class RunContext(NamedTuple):
    """The workflow run a step's calls are made for: the run, the client that started it, and the
    correlation id of the request that started it (a replay's calls carry the replay's as theirs)."""

    run_id: str
    started_by: str | None
    correlation_id: str


correlation_id_var: ContextVar[str | None] = ContextVar("stratum_correlation_id", default=None)
access_var: ContextVar[AccessContext | None] = ContextVar("stratum_access", default=None)
run_var: ContextVar[RunContext | None] = ContextVar("stratum_run", default=None)


def current_correlation_id() -> str | None:
    return correlation_id_var.get()


def current_access() -> AccessContext | None:
    return access_var.get()


def current_run() -> RunContext | None:
    return run_var.get()
