"""Base of the typed clients one tier uses to call another over its HTTP contract.

In the single-process default the call is in process: the client calls the tier's ASGI app behind its edge
(the same correlation id, access line, token check, scopes, rate limit and contract as any caller) directly,
without httpx (``InProcessCall``): building an httpx request, its auth flow and hooks and
``httpx.ASGITransport`` cost ~180 us of CPU per inner call, more than a third of the governed call itself.
With a base URL the same client calls a remote deployment over HTTP with httpx.

Every call carries the calling tier's own token (client credentials), the correlation id and the original
caller (``X-Stratum-On-Behalf-Of``) for audit and for the called tier's rate limit, which charges an inner
call to that caller, not to the shared tier client. A workflow step's call carries the client that started
the run as the original caller, and the run (``X-Stratum-Run-ID``, with the run's own correlation id in
``X-Stratum-Run-Correlation-ID``), so the called tier logs it and charges the call to the workflows' budget.
A problem answered by the called tier is re-raised as the same problem, so a vendor outage three tiers down
still reaches the caller as a 503, and the caller's own exhausted inner budget as its 429.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote

import httpx
import msgspec

from apis.context import current_access, current_correlation_id, current_run
from apis.json_limits import json_too_deep
from apis.problems import PROBLEM_KINDS, FieldError, ProblemError

if TYPE_CHECKING:
    from apis.asgi import ASGIApp, Message

__all__ = ["InProcessCall", "TierClient"]

T = TypeVar("T")

_PASS_THROUGH = {
    "not-found",
    "vendor-rejected",  # the system of record refused the data: the caller's (or its workflow's) to fix
    "vendor-bad-response",
    "vendor-unavailable",
    "vendor-timeout",
    "tier-unavailable",
    # Inner calls are charged to the caller they are made for: its budget is spent, it waits Retry-After.
    "rate-limited",
}


# Query parameters a caller hands to us that we relay verbatim to the called tier, which alone can judge
# them: a paging cursor is opaque here, so when the called tier refuses one, the mistake is our caller's.
_RELAYED_QUERY = frozenset({"cursor"})


class _UpstreamProblem(msgspec.Struct, kw_only=True):
    code: str | None = None
    detail: str | None = None
    vendor: str | None = None
    retry_after: int | None = None
    errors: list[FieldError] | None = None


def _context_headers() -> dict[str, str]:
    """What an inner call says about whom and what it is for: the correlation id, the original caller, the
    workflow run."""
    headers: dict[str, str] = {}
    if correlation_id := current_correlation_id():
        headers["X-Correlation-ID"] = correlation_id
    access = current_access()
    run = current_run()
    if access is not None:
        headers["X-Stratum-On-Behalf-Of"] = access.on_behalf_of or access.client_id
    elif run is not None and run.started_by:
        headers["X-Stratum-On-Behalf-Of"] = run.started_by
    if run is not None:
        headers["X-Stratum-Run-ID"] = run.run_id
        headers["X-Stratum-Run-Correlation-ID"] = run.correlation_id
    return headers


async def _add_context(request: httpx.Request) -> None:
    request.headers.update(_context_headers())


# What a path keeps as it is (RFC 3986 pchar, "/" and "%", so an already-encoded path is not encoded again).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


class Answer(msgspec.Struct, frozen=True):
    """An in-process call's response: what the client reads of an ``httpx.Response``."""

    status_code: int
    headers: dict[str, str]
    content: bytes


class InProcessCall:
    """One HTTP request to an ASGI app in this process, as a server would make it, without sockets or httpx.

    The app is the called tier behind its edge, so nothing of its governance is skipped; only the client
    side of HTTP (URL objects, header classes, an auth flow generator, stream wrappers) is. The token comes
    from ``access_token`` (the tier's client-credentials token, cached); a 401 fetches a new one once, as
    the httpx auth flow does."""

    def __init__(self, app: ASGIApp, host: str, access_token: Callable[..., Awaitable[str]]) -> None:
        self._app = app
        self._host = host.encode()
        self._access_token = access_token

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        content: bytes = b"",
    ) -> Answer:
        query = str(httpx.QueryParams(params)).encode() if params else b""
        base = [(b"host", self._host), (b"accept", b"*/*")]
        for name, value in (*_context_headers().items(), *(headers or {}).items()):
            base.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        if content:
            base.append((b"content-length", str(len(content)).encode()))
        token = await self._access_token()
        answer = await self._send(method, path, query, base, token, content)
        if answer.status_code == 401:
            token = await self._access_token(force=True, stale=token)
            answer = await self._send(method, path, query, base, token, content)
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        token: str,
        body: bytes,
    ) -> Answer:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            # As an HTTP client would send it: anything outside ASCII's URL characters percent-encoded.
            "raw_path": quote(path, safe=_PATH_SAFE).encode("ascii"),
            "query_string": query,
            "root_path": "",
            "headers": [*headers, (b"authorization", f"Bearer {token}".encode("latin-1"))],
            "client": ("127.0.0.1", 0),
            "server": (self._host.decode(), 80),
        }
        status = 0
        response_headers: dict[str, str] = {}
        chunks: list[bytes] = []
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    response_headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._app(scope, receive, send)
        return Answer(status, response_headers, b"".join(chunks))


class TierClient:
    tier: str = "tier"

    def __init__(
        self,
        *,
        base_url: str,
        auth: httpx.Auth,
        transport: httpx.AsyncBaseTransport | None = None,
        app: ASGIApp | None = None,
        timeout: float = 15.0,
        max_connections: int = 100,
    ) -> None:
        """``app``: the called tier's ASGI app (behind its edge), when it runs in this process and ``auth``
        can hand out its token; the client then calls it in process (``InProcessCall``)."""
        access_token = getattr(auth, "access_token", None)
        self._in_process = (
            InProcessCall(app, httpx.URL(base_url).host, access_token)
            if app is not None and access_token is not None
            else None
        )
        if app is not None and transport is None:
            transport = httpx.ASGITransport(app=app)
        self.http = httpx.AsyncClient(
            base_url=base_url,
            auth=auth,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
            event_hooks={"request": [_add_context]},
        )

    async def _get(self, path: str, type_: type[T], params: dict[str, Any] | None = None) -> T:
        return await self._call("GET", path, type_, params=params)

    async def _post(self, path: str, type_: type[T], body: Any, *, idempotency_key: str | None = None) -> T:
        return await self._write("POST", path, type_, body, idempotency_key=idempotency_key)

    async def _write(
        self, method: str, path: str, type_: type[T], body: Any = None, *, idempotency_key: str | None = None
    ) -> T:
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        content = msgspec.json.encode(body) if body is not None else b""
        return await self._call(method, path, type_, headers=headers, content=content)

    async def _call(
        self, method: str, path: str, type_: type[T], *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> T:
        response: httpx.Response | Answer
        try:
            if self._in_process is not None:
                response = await self._in_process(method, path, headers=headers, **kwargs)
            else:
                response = await self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise self._unavailable(f"the {self.tier} tier did not answer in time") from None
        except httpx.HTTPError as exc:
            raise self._unavailable(f"the {self.tier} tier is unreachable ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise self._problem(response)
        try:
            if json_too_deep(response.content):
                raise msgspec.DecodeError("nested too deep")
            return msgspec.json.decode(response.content, type=type_)
        except msgspec.DecodeError:  # not JSON, too deep, or not the contract's shape
            raise ProblemError("vendor-bad-response", f"the {self.tier} tier broke its contract") from None

    def _unavailable(self, detail: str) -> ProblemError:
        return ProblemError(
            "tier-unavailable", detail, headers={"Retry-After": "5"}, extra={"retry_after": 5}
        )

    def _problem(self, response: httpx.Response | Answer) -> ProblemError:
        try:
            if json_too_deep(response.content):
                raise msgspec.DecodeError("nested too deep")
            upstream = msgspec.json.decode(response.content, type=_UpstreamProblem)
        except msgspec.DecodeError:
            upstream = _UpstreamProblem()
        if upstream.code in _PASS_THROUGH and upstream.code in PROBLEM_KINDS:
            headers = (
                {"Retry-After": response.headers["retry-after"]} if "retry-after" in response.headers else {}
            )
            extra = {
                k: v for k, v in (("vendor", upstream.vendor), ("retry_after", upstream.retry_after)) if v
            }
            return ProblemError(upstream.code, upstream.detail, headers=headers, extra=extra)
        if (
            upstream.code == "validation-failed"
            and upstream.errors
            and all(e.location == "query" and e.field in _RELAYED_QUERY for e in upstream.errors)
        ):
            return ProblemError("validation-failed", upstream.detail, errors=upstream.errors)
        # Anything else (our token refused, a contract mismatch) is this tier's fault, not the caller's.
        return ProblemError(
            "tier-unavailable" if response.status_code in (429, 503) else "vendor-bad-response",
            f"the {self.tier} tier answered {response.status_code} ({upstream.code or 'no problem code'})",
        )

    async def aclose(self) -> None:
        await self.http.aclose()
