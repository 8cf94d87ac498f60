"""Per-request context carried in contextvars, so outbound calls can pass it on without threading it
through every function: the correlation id and the authenticated caller."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apis.security import AccessContext

__all__ = ["access_var", "correlation_id_var", "current_access", "current_correlation_id"]

correlation_id_var: ContextVar[str | None] = ContextVar("stratum_correlation_id", default=None)
access_var: ContextVar[AccessContext | None] = ContextVar("stratum_access", default=None)


def current_correlation_id() -> str | None:
    return correlation_id_var.get()


def current_access() -> AccessContext | None:
    return access_var.get()
