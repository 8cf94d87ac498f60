"""How ``stratum serve`` listens: uvicorn, on a socket bound before anything starts, with a header timeout.

The port is bound (and listening) before the gateway's lifespan runs, so a second ``stratum serve`` on a port
in use fails at once, before it starts the workflow engine on the same run database (which would resume the
first one's runs in flight) or writes to the data directory. uvicorn gets the socket, with one worker or
``--workers N`` (its supervisor hands the socket to each worker process).

uvicorn has no header timeout: a connection that sends half a request line and then nothing (slowloris)
stays open until the client goes away, and enough of them exhaust the process's file descriptors.
``HeaderTimeoutProtocol`` closes a connection whose request headers are not complete within
``header_timeout_seconds`` of the connection opening or of the request's first byte. Between requests of
a keep-alive connection, uvicorn's own keep-alive timeout closes an idle one; a request's body is the
gateway's business (its size limit), not this timer's.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

__all__ = [
    "DEFAULT_HEADER_TIMEOUT_SECONDS",
    "HeaderTimeoutProtocol",
    "PortUnavailable",
    "ServerConfig",
    "listen",
    "serve",
]

DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
_STARTUP_FAILURE = 3  # uvicorn's exit status when the app did not start


class PortUnavailable(Exception):
    """The address cannot be listened on; the message says which and why, for a person."""


def listen(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A socket bound to ``host:port`` and listening: from here on no other process can take the port.

    Listening at once matters: two sockets with SO_REUSEADDR (as uvicorn sets) may both bind one port
    until one listens. Connections that arrive while the gateway starts wait in the backlog."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restart may bind while the last run's connections are in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        hint = (
            " (another `stratum serve`, or another program, listens there; nothing was started)"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise PortUnavailable(f"cannot listen on {where}: {exc.strerror or exc}{hint}") from exc
    sock.set_inheritable(True)
    return sock


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration with Stratum's HTTP protocol and its header timeout (which travels with the
    configuration to each worker process)."""

    def __init__(
        self, app: str, *, header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS, **kwargs: Any
    ) -> None:
        super().__init__(app, http=HeaderTimeoutProtocol, **kwargs)
        self.header_timeout_seconds = header_timeout_seconds


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (the one ``uvicorn[standard]`` picks), closing connections that do not
    finish a request's headers in time."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout: float = getattr(config, "header_timeout_seconds", DEFAULT_HEADER_TIMEOUT_SECONDS)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # A new request on a kept-alive connection. The first request's timer runs from the connection
        # opening: its first byte does not buy it more time.
        if self._header_timer is None:
            self._start_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        if self.header_timeout > 0:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request is stuck behind one still being answered: finish that answer, then close.
            self.cycle.keep_alive = False
            return
        # No log line: under a slowloris attack it would be one per connection.
        self.transport.close()


def serve(config: ServerConfig, sock: socket.socket) -> int:
    """Serve on ``sock`` (from ``listen``) until stopped; the process's exit status."""
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
            return 0
        server = uvicorn.Server(config)
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        return 0
    return 0 if server.started else _STARTUP_FAILURE
