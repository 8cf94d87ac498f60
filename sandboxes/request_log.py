"""The request log every sandbox keeps for ``GET /__sandbox/stats``: method, path and final status of each
vendor call, faults and refusals included, admin calls left out."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from sandboxes.faults import ASGIApp, Message, Receive, Scope, Send, relative_path

__all__ = ["RequestLog", "RequestLogEntry"]


class RequestLogEntry(msgspec.Struct, frozen=True):
    """One served request, as listed by ``GET /__sandbox/stats``."""

    method: str
    path: str
    status: int


class RequestLog:
    """ASGI wrapper that hands every non-admin request's outcome to ``record``."""

    def __init__(self, app: ASGIApp, record: Callable[[RequestLogEntry], None], admin_prefix: str) -> None:
        self.app = app
        self.record = record
        self.admin_prefix = admin_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = relative_path(scope)
        if scope["type"] != "http" or path == self.admin_prefix or path.startswith(self.admin_prefix + "/"):
            await self.app(scope, receive, send)
            return
        # 499 (nginx's "client closed request") when nothing was answered, e.g. a hang fault the client
        # gave up on; 500 if the app blew up before answering.
        status = 499

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except Exception:
            # Cancellation (a client timing out in process) is not an Exception and stays 499.
            status = 500 if status == 499 else status
            raise
        finally:
            self.record(RequestLogEntry(str(scope.get("method", "GET")), path, status))
