"""Plain ASGI types for the gateway's raw ASGI layers (edge, dispatcher), which see every scope type.

Litestar's TypedDicts describe what reaches a route; the layers outside routing also see lifespan scopes and
must be callable by any ASGI server or transport (uvicorn, ``httpx.ASGITransport``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
# Loose on purpose: Litestar apps, httpx and uvicorn each type the three arguments their own way.
ASGIApp: TypeAlias = Callable[..., Awaitable[None]]
