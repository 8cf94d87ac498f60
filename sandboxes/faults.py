"""Fault injection for sandboxes: make any ASGI app fail the way real vendors fail.

A `FaultInjector` holds `FaultRule`s; `with_faults` wraps an ASGI app so matching requests get an error
response, a maintenance page, extra latency, a corrupted body or a hang instead of (or on top of) the
app's answer. Rules are managed in-process (``injector.add(rule)``) or over HTTP:

- ``POST {admin_prefix}/faults`` with a JSON rule -> 201 ``{"id", "rule", "remaining", "applied"}``
- ``GET {admin_prefix}/faults`` -> 200 ``{"faults": [...]}``
- ``DELETE {admin_prefix}/faults`` -> 204 (clear all); ``DELETE {admin_prefix}/faults/{id}`` -> 204/404

Admin paths are never faulted, so a test can always clear what it injected. Paths are matched relative
to the app root (ASGI ``root_path`` removed), so rules do not depend on where the sandbox is mounted.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Annotated, Any, Literal
from urllib.parse import unquote_plus

import msgspec

__all__ = [
    "ASGIApp",
    "ActiveFault",
    "FaultInjector",
    "FaultKind",
    "FaultMiddleware",
    "FaultRule",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "relative_path",
    "with_faults",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FaultKind = Literal["error", "outage", "latency", "malformed", "hang", "lost"]

DEFAULT_HANG_MS = 30_000
_MAX_ADMIN_BODY = 64 * 1024
# A 204/304 or a HEAD answer has no body to corrupt; inventing one would break HTTP framing itself.
_BODYLESS_STATUSES = frozenset({204, 304})

_DEFAULT_ERROR_BODY = b'{"error":"service_unavailable","message":"The service is temporarily unavailable."}'
_OUTAGE_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Down for Maintenance</title></head>\n"
    b"<body><h1>We&rsquo;re down for maintenance</h1>\n"
    b"<p>This service is undergoing scheduled maintenance and is temporarily unavailable. "
    b"Please try again later.</p></body></html>\n"
)
_GATEWAY_TIMEOUT_PAGE = (
    b"<html><head><title>504 Gateway Time-out</title></head>\n"
    b"<body><center><h1>504 Gateway Time-out</h1></center></body></html>\n"
)


class FaultRule(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """What to break and how.

    `method` (case-insensitive) and `path_pattern` (regex searched in the app-relative path) select
    requests; None matches everything. `body_pattern` (regex searched in the request body, as UTF-8) narrows
    them to the requests that carry it, e.g. one SuiteQL statement among the queries POSTed to one URL;
    `query_pattern` (regex searched in the URL-decoded query string) likewise, e.g. one SOQL query among those
    read from ``/query/?q=``.
    `latency_ms` is the delay for ``latency`` and the hang time for ``hang`` and ``lost`` (None there means
    30 s). ``lost`` lets the vendor do the work, then never delivers its answer (504 after the hang, if the
    client is still there): the timeout after which a retried write must not make a second record. `times`
    is how many requests the rule applies to before it expires (None: until cleared); requests skipped by
    `probability` do not use it up.
    """

    kind: FaultKind
    method: str | None = None
    path_pattern: str | None = None
    body_pattern: str | None = None
    query_pattern: str | None = None
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] = 503
    body: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    latency_ms: Annotated[int, msgspec.Meta(ge=0)] | None = None
    probability: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    times: Annotated[int, msgspec.Meta(ge=1)] | None = None

    def __post_init__(self) -> None:
        for name, text in (
            ("path_pattern", self.path_pattern),
            ("body_pattern", self.body_pattern),
            ("query_pattern", self.query_pattern),
        ):
            if text is not None:
                try:
                    re.compile(text)
                except re.error as exc:
                    # msgspec turns ValueError raised here into a ValidationError naming the rule.
                    raise ValueError(f"invalid {name}: {exc}") from None


class ActiveFault(msgspec.Struct, kw_only=True):
    """A rule as held by the injector: its id and how much of it is left."""

    id: str
    rule: FaultRule
    remaining: int | None
    applied: int = 0


class _Armed:
    """An active rule with its patterns compiled."""

    __slots__ = ("body", "fault", "path", "query")

    def __init__(self, fault: ActiveFault) -> None:
        rule = fault.rule
        self.fault = fault
        self.path = None if rule.path_pattern is None else re.compile(rule.path_pattern)
        self.body = None if rule.body_pattern is None else re.compile(rule.body_pattern)
        self.query = None if rule.query_pattern is None else re.compile(rule.query_pattern)

    def selects(self, method: str, path: str) -> bool:
        """Whether the rule's method and path take this request (its body and query looked at apart)."""
        wanted = self.fault.rule.method
        if wanted is not None and wanted.upper() != method.upper():
            return False
        return self.path is None or self.path.search(path) is not None


class FaultInjector:
    """Holds the active fault rules and decides, deterministically, which request gets which fault.

    Thread-safe: tests may add rules from their own thread while the app serves from another.
    """

    def __init__(self, *, seed: int = 0) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # noqa: S311 - reproducible test faults, not security
        self._faults: list[_Armed] = []
        self._next_id = 1

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        """The active rules, in the order they are tried."""
        with self._lock:
            return tuple(armed.fault.rule for armed in self._faults)

    def faults(self) -> list[ActiveFault]:
        """Snapshots of the active rules with their ids and counters."""
        with self._lock:
            return [msgspec.structs.replace(armed.fault) for armed in self._faults]

    def add(self, rule: FaultRule) -> str:
        """Activate `rule` and return its id."""
        with self._lock:
            fault_id = f"fault-{self._next_id}"
            self._next_id += 1
            self._faults.append(_Armed(ActiveFault(id=fault_id, rule=rule, remaining=rule.times)))
            return fault_id

    def remove(self, fault_id: str) -> bool:
        """Deactivate one rule; False if there is no such active rule."""
        with self._lock:
            kept = [armed for armed in self._faults if armed.fault.id != fault_id]
            removed = len(kept) != len(self._faults)
            self._faults = kept
            return removed

    def clear(self) -> None:
        """Remove every rule and rewind the random generator, so a reset replays identically."""
        with self._lock:
            self._faults = []
            self._rng = random.Random(self._seed)  # noqa: S311 - see __init__

    def wants_body(self, method: str, path: str) -> bool:
        """True when a rule that matches this request's method and path looks into its body."""
        with self._lock:
            return any(armed.body is not None and armed.selects(method, path) for armed in self._faults)

    def match(
        self, method: str, path: str, body: bytes | None = None, query_string: bytes = b""
    ) -> FaultRule | None:
        """Return the rule to apply to this request, using up one of its `times`, or None. A rule with a
        `body_pattern` applies only to a request whose `body` is given and carries it; one with a
        `query_pattern`, only to a request whose (URL-decoded) query string carries it."""
        query: str | None = None  # decoded only for a rule that looks at it
        with self._lock:
            for index, armed in enumerate(self._faults):
                fault, rule = armed.fault, armed.fault.rule
                if not armed.selects(method, path):
                    continue
                if armed.query is not None:
                    if query is None:
                        query = unquote_plus(query_string.decode("latin-1"))
                    if armed.query.search(query) is None:
                        continue
                if armed.body is not None and (
                    body is None or armed.body.search(body.decode("utf-8", "replace")) is None
                ):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                fault.applied += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[index]
                return rule
            return None


def relative_path(scope: Scope) -> str:
    """The request path relative to the app root, whether or not the server left `root_path` in it."""
    path: str = scope.get("path", "/")
    root_path: str = scope.get("root_path", "").rstrip("/")
    # Only strip on a segment boundary: root "/s" must not eat the "/s" of "/services".
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        path = path[len(root_path) :] or "/"
    return path


def _encode_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _respond(
    send: Send, status: int, body: bytes, content_type: str, extra: Iterable[tuple[str, str]] = ()
) -> None:
    headers = _encode_headers([("content-type", content_type), ("content-length", str(len(body))), *extra])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _no_content(send: Send) -> None:
    # RFC 9110 forbids Content-Length on a 204, and strict servers (h11) enforce it.
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _read_body(receive: Receive) -> bytes | None:
    """Read the request body; None if the client went away or it is larger than admin bodies may be."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_ADMIN_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _buffered(receive: Receive) -> tuple[bytes | None, Receive]:
    """The whole request body (None if the client went away first) and a receive that replays it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, _replaying([message], receive)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, _replaying([{"type": "http.request", "body": body, "more_body": False}], receive)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives `messages` first, then what `receive` gives."""

    async def replayed() -> Message:
        return messages.pop(0) if messages else await receive()

    return replayed


def _corrupt(body: bytes) -> bytes:
    """Return a prefix of `body` that is not valid JSON, like a connection cut mid-response."""
    candidate = body[: max(1, len(body) // 2)]
    try:
        msgspec.json.decode(candidate)
    except msgspec.DecodeError:
        return candidate
    # Short bodies can truncate to something valid ("1", "[]"...); an open object never is.
    return b'{"' + candidate


class FaultMiddleware:
    """Pure ASGI middleware applying an injector's rules to an app; see `with_faults`."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, admin_prefix: str = "/__sandbox") -> None:
        self.app = app
        self.injector = injector
        self.admin_prefix = admin_prefix.rstrip("/")
        self._faults_path = f"{self.admin_prefix}/faults"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = relative_path(scope)
        method: str = scope.get("method", "GET")
        if path == self._faults_path or path.startswith(self._faults_path + "/"):
            await self._admin(method, path, receive, send)
            return
        if path == self.admin_prefix or path.startswith(self.admin_prefix + "/"):
            await self.app(scope, receive, send)
            return
        body: bytes | None = None
        if self.injector.wants_body(method, path):
            # Read whole, then handed to the app (or the fault) as if unread.
            body, receive = await _buffered(receive)
        rule = self.injector.match(method, path, body, scope.get("query_string", b""))
        if rule is None:
            await self.app(scope, receive, send)
            return
        await self._apply(rule, scope, receive, send)

    async def _apply(self, rule: FaultRule, scope: Scope, receive: Receive, send: Send) -> None:
        extra = tuple(rule.headers.items())
        if rule.kind == "error":
            body = _DEFAULT_ERROR_BODY if rule.body is None else rule.body.encode()
            await _respond(send, rule.status, body, rule.content_type or "application/json", extra)
        elif rule.kind == "outage":
            body = _OUTAGE_PAGE if rule.body is None else rule.body.encode()
            await _respond(send, rule.status, body, rule.content_type or "text/html; charset=utf-8", extra)
        elif rule.kind == "latency":
            await asyncio.sleep((rule.latency_ms or 0) / 1000)
            await self.app(scope, receive, send)
        elif rule.kind == "malformed":
            await self.app(scope, receive, _MalformingSend(send, scope.get("method") == "HEAD", extra))
        elif rule.kind == "lost":

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            delay_ms = DEFAULT_HANG_MS if rule.latency_ms is None else rule.latency_ms
            if await _wait_unless_disconnected(receive, delay_ms / 1000):
                await _respond(send, 504, _GATEWAY_TIMEOUT_PAGE, "text/html; charset=utf-8", extra)
        else:
            delay_ms = DEFAULT_HANG_MS if rule.latency_ms is None else rule.latency_ms
            if await _wait_unless_disconnected(receive, delay_ms / 1000):
                await _respond(send, 504, _GATEWAY_TIMEOUT_PAGE, "text/html; charset=utf-8", extra)

    async def _admin(self, method: str, path: str, receive: Receive, send: Send) -> None:
        if path != self._faults_path:
            fault_id = path[len(self._faults_path) + 1 :]
            if method != "DELETE":
                await _respond_json(send, 405, {"error": "method_not_allowed", "message": "use DELETE"})
            elif self.injector.remove(fault_id):
                await _no_content(send)
            else:
                await _respond_json(send, 404, {"error": "not_found", "message": f"no fault {fault_id}"})
            return
        if method == "GET":
            await _respond_json(send, 200, {"faults": msgspec.to_builtins(self.injector.faults())})
        elif method == "DELETE":
            self.injector.clear()
            await _no_content(send)
        elif method == "POST":
            raw = await _read_body(receive)
            if raw is None:
                await _respond_json(send, 413, {"error": "invalid_fault_rule", "message": "body too large"})
                return
            try:
                rule = msgspec.json.decode(raw, type=FaultRule)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await _respond_json(send, 400, {"error": "invalid_fault_rule", "message": str(exc)})
                return
            fault_id = self.injector.add(rule)
            created = next((fault for fault in self.injector.faults() if fault.id == fault_id), None)
            payload = created or ActiveFault(id=fault_id, rule=rule, remaining=rule.times)
            await _respond_json(send, 201, msgspec.to_builtins(payload))
        else:
            error = {"error": "method_not_allowed", "message": "use GET, POST or DELETE"}
            await _respond_json(send, 405, error)


async def _respond_json(send: Send, status: int, payload: Any) -> None:
    await _respond(send, status, msgspec.json.encode(payload), "application/json")


async def _wait_unless_disconnected(receive: Receive, seconds: float) -> bool:
    """Sleep `seconds`; False as soon as the client disconnects (nobody is left to answer)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({watcher}, timeout=seconds)
    finally:
        watcher.cancel()
    return watcher not in done


class _MalformingSend:
    """A `send` that buffers the app's response and emits a truncated body with a fixed Content-Length."""

    def __init__(self, send: Send, is_head: bool, extra: tuple[tuple[str, str], ...]) -> None:
        self._send = send
        self._is_head = is_head
        self._extra = extra
        self._start: Message | None = None
        self._chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            return
        if message["type"] != "http.response.body" or self._start is None:
            await self._send(message)
            return
        self._chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start = self._start
        body = b"".join(self._chunks)
        headers = list(start.get("headers", []))
        if not self._is_head and start["status"] not in _BODYLESS_STATUSES:
            body = _corrupt(body)
            headers = [(name, value) for name, value in headers if name.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        headers.extend(_encode_headers(self._extra))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


def with_faults(app: ASGIApp, injector: FaultInjector, admin_prefix: str = "/__sandbox") -> FaultMiddleware:
    """Wrap any ASGI `app` so `injector`'s rules apply to it and its admin endpoints are served."""
    return FaultMiddleware(app, injector, admin_prefix)
