"""How a vendor sandbox's Litestar app is put together, where the vendors agree: the sandbox object handed to
handlers by dependency injection (parameter ``sandbox``), the in-process handles on ``app.state``, and the
ASGI layers wrapped around Litestar's router: the request log, fault injection, then the vendor's own API
gate (authentication, request budget), in that order from the outside in.

Used by the Kantata and Anaplan sandboxes; `send_json` is how those layers answer without the router.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import msgspec
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import ASGIApp as LitestarASGIApp
from litestar.types import ControllerRouterHandler, ExceptionHandlersMap

from sandboxes.faults import ASGIApp, FaultInjector, Send, with_faults
from sandboxes.request_log import RequestLog, RequestLogEntry

__all__ = ["SandboxState", "sandbox_app", "send_json"]


class SandboxState(Protocol):
    """What the layers use of a vendor's sandbox object (its account, tenant...)."""

    faults: FaultInjector
    request_log: deque[RequestLogEntry]


def sandbox_app(
    sandbox: SandboxState,
    *,
    route_handlers: Sequence[ControllerRouterHandler],
    exception_handlers: ExceptionHandlersMap,
    gate: Callable[[ASGIApp], ASGIApp],
    admin_prefix: str,
    **options: Any,
) -> Litestar:
    """The Litestar app serving ``sandbox``, with ``gate`` (given Litestar's router) in front of the router.

    ``options`` go to `Litestar` as they are (e.g. ``request_max_body_size``). In-process handles for tests:
    ``app.state.sandbox`` and ``app.state.faults``.
    """

    def provide_sandbox() -> SandboxState:
        return sandbox

    app = Litestar(
        route_handlers=route_handlers,
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False)},
        exception_handlers=exception_handlers,
        openapi_config=None,
        state=State({"sandbox": sandbox, "faults": sandbox.faults}),
        **options,
    )
    # Faults, auth and the request budget must see every request, routed or not, so they wrap Litestar's own
    # handler (inside Litestar.__call__, which still owns lifespan and scope setup) rather than being route
    # middleware, which Litestar only runs for matched routes.
    router = cast("ASGIApp", app.asgi_handler)
    wrapped = RequestLog(
        with_faults(gate(router), sandbox.faults, admin_prefix),
        lambda entry: sandbox.request_log.append(entry),
        admin_prefix,
    )
    app.asgi_handler = cast("LitestarASGIApp", wrapped)
    return app


async def send_json(
    send: Send, status: int, payload: Any, media_type: str, headers: Mapping[str, str] | None = None
) -> None:
    """Answer ``payload`` as JSON straight from an ASGI layer, before or without the router."""
    body = msgspec.json.encode(payload)
    raw_headers = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
