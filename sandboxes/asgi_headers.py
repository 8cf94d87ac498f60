"""Reading request headers from a raw ASGI scope, for the sandboxes' auth gates and governors (which run
below Litestar, before a ``Request`` exists)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandboxes.faults import Scope

__all__ = ["bearer_token", "header"]


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), or None."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def bearer_token(scope: Scope, schemes: Iterable[str] = ("bearer",)) -> str | None:
    """The token of an ``Authorization: <scheme> <token>`` header whose scheme is one of ``schemes``."""
    scheme, _, token = (header(scope, b"authorization") or "").partition(" ")
    if scheme.lower() in schemes and token.strip():
        return token.strip()
    return None
