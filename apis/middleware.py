"""The governance every tier app runs, in this order: automatic OPTIONS, authentication and scopes, rate
limit, media type, idempotency. Each step reads the route's policy from the handler's ``opt`` (written by
``apis.routing.operation``) and holds no per-request state on ``self``.

The steps run in one Litestar middleware (``GovernanceMiddleware``), not one each: every middleware layer
costs a bypass check and a call per request whether it acts or not, and the governed call is on every path
(one layer instead of five took ~20 us off each request, bench/gateway_overhead.py).
"""

from __future__ import annotations

import hashlib
import re
import sys
import uuid
from typing import TYPE_CHECKING, Any, Literal, cast

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from apis.context import access_var
from apis.json_limits import MAX_JSON_DEPTH, json_too_deep
from apis.logging import get_logger
from apis.problems import ProblemError
from apis.security import insufficient_scope, invalid_token, unauthenticated
from apis.state import StateStoreUnavailable, needed_by

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from apis import asgi
    from apis.runtime import Runtime
    from apis.state import StateStore

__all__ = [
    "Authentication",
    "GovernanceMiddleware",
    "Idempotency",
    "RateLimit",
    "RoutePolicyError",
]

log = get_logger("stratum.governance")
ON_BEHALF_OF_HEADER = "x-stratum-on-behalf-of"
RUN_HEADER = "x-stratum-run-id"
RUN_CORRELATION_HEADER = "x-stratum-run-correlation-id"


class RoutePolicyError(RuntimeError):
    """A route reached the auth middleware without declaring scopes (fail closed)."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _method(scope: Scope) -> str:
    method: str = scope["method"]  # type: ignore[typeddict-item]  # these middlewares only run on HTTP
    return method


def _opt(scope: Scope) -> dict[str, Any]:
    opt: dict[str, Any] = scope["route_handler"].opt
    return opt


def _is_automatic_options(scope: Scope) -> bool:
    """Litestar answers OPTIONS itself (204 with Allow) on every path: public, with nothing to protect."""
    return _method(scope) == "OPTIONS" and scope["route_handler"].handler_name == "options_handler"


def tier_client_ids(runtime: Runtime) -> frozenset[str]:
    """The clients the tiers call each other with: the only ones trusted to name a caller or a run."""
    settings = runtime.settings
    return frozenset({settings.process_client.client_id, settings.experience_client.client_id})


def _with_headers(send: Send, headers: dict[str, str]) -> Send:
    encoded = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *encoded]
        await send(message)

    return wrapped


async def _answer_automatic_options(scope: Scope, send: Send) -> None:
    """Answers Litestar's automatic OPTIONS with the path's real methods.

    Litestar (2.25) rebuilds a route when a second handler joins its path but keeps the first route's
    OPTIONS handler, whose ``Allow`` then lists only the first handler's methods. The final route table
    is right, so ``Allow`` is taken from there.
    """
    template = scope["route_handler"].paths
    methods = sorted(
        {m for route in scope["app"].routes if route.path in template for m in getattr(route, "methods", ())}
    )
    await send(
        {"type": "http.response.start", "status": 204, "headers": [(b"allow", ", ".join(methods).encode())]}
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class Authentication:
    """Bearer JWT -> ``scope["auth"]`` (an ``AccessContext``), then the route's required scopes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Only the tiers' own clients may say on whose behalf they call; anyone else could forge the audit.
        self.tier_clients = tier_client_ids(runtime)

    async def check(self, scope: Scope, opt: dict[str, Any]) -> None:
        required: frozenset[str] | None = opt.get("scopes")
        if required is None:
            raise RoutePolicyError(f"route {scope.get('path_template')} declares no scopes")
        header = _header(scope, b"authorization")
        if not header:
            raise unauthenticated()
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise unauthenticated()
        if not token.strip():
            raise invalid_token("empty token")
        access = await self.runtime.verifier.verify(token.strip())
        on_behalf_of = _header(scope, ON_BEHALF_OF_HEADER.encode())
        if on_behalf_of and access.client_id in self.tier_clients:
            access = msgspec.structs.replace(access, on_behalf_of=on_behalf_of[:128])
        scope["auth"] = access
        access_var.set(access)
        structlog.contextvars.bind_contextvars(client_id=access.client_id)
        run_id = _header(scope, RUN_HEADER.encode()) if access.client_id in self.tier_clients else None
        if run_id:
            # A workflow step's call: its lines name the run (and the correlation id the run started
            # under, when this call's is a replay's), and the rate limit charges the workflows' budget.
            scope.setdefault("state", {})["run_id"] = run_id[:128]
            structlog.contextvars.bind_contextvars(
                run_id=run_id[:128],
                run_correlation_id=(_header(scope, RUN_CORRELATION_HEADER.encode()) or "")[:128] or None,
            )
        if not required <= access.scopes:
            raise insufficient_scope(required)
        alternatives: frozenset[str] | None = opt.get("any_scopes")
        if alternatives and not alternatives & access.scopes:
            raise insufficient_scope(alternatives)


class RateLimit:
    """One budget per (tier quota, client). Headers on every answer; 429 with Retry-After past it.

    A tier client's call is charged by whom it is made for, so no caller can spend what others and the
    workflows depend on: a call made on behalf of a caller (an experience view's fan-out, a readiness
    check) spends that caller's ``{tier}-inner`` budget; a workflow step's call (it names its run) spends
    the ``{tier}-workflows`` budget of the client that started the run (the tier client's, without one).
    Only a tier client's own calls, for nobody, spend its ``{tier}`` budget.
    """

    def __init__(self, runtime: Runtime, tier: str) -> None:
        self.runtime = runtime
        self.tier = tier
        self.tier_clients = tier_client_ids(runtime)

    def _budget(self, scope: Scope, opt: dict[str, Any]) -> tuple[str, str]:
        """(quota name, key) that pays for this request."""
        access = scope["auth"]
        if access.client_id in self.tier_clients:
            if scope.get("state", {}).get("run_id"):
                return f"{self.tier}-workflows", access.on_behalf_of or access.client_id
            if access.on_behalf_of:
                return f"{self.tier}-inner", access.on_behalf_of
        return opt.get("quota") or self.tier, access.client_id

    async def charge(self, scope: Scope, opt: dict[str, Any]) -> dict[str, str]:
        """Spend one request of the budget that pays for it; its RateLimit headers, or a 429 past it."""
        name, client_id = self._budget(scope, opt)
        quota = self.runtime.limiter.quota(name, self.runtime.settings.rate_limit_for(name))
        decision = await self.runtime.limiter.hit(quota, client_id)
        headers = decision.headers
        if not decision.allowed:
            raise ProblemError(
                "rate-limited",
                f"Client {client_id} exceeded the {quota.name} quota.",
                headers={**headers, "Retry-After": str(decision.reset_seconds)},
                extra={"retry_after": decision.reset_seconds},
            )
        return headers


_JSON_MEDIA = re.compile(r"^application/([a-z0-9.+-]+\+)?json\s*(;.*)?$", re.IGNORECASE)


async def _json_only(scope: Scope, receive: Receive) -> Receive:
    """Routes that take a body take JSON only: anything else is a 415 before the handler parses it.

    It is also the one place a request's JSON is measured before anything parses it: a body nested
    deeper than ``MAX_JSON_DEPTH`` is a 400 here, where a parser would raise ``RecursionError`` (a 500).
    Public routes with a body (webhooks) pass here too. Returns the ``receive`` that replays the body."""
    content_type = _header(scope, b"content-type")
    if content_type is None or not _JSON_MEDIA.match(content_type.strip()):
        raise ProblemError(
            "unsupported-media-type", f"Expected application/json, got {content_type or 'nothing'}."
        )
    # Edge has already capped the body's size; this only reads what it let through.
    body = await _read_body(cast("asgi.Receive", receive), sys.maxsize)
    if json_too_deep(body):
        raise ProblemError("malformed-request", f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
    return cast("Receive", _replay_receive(body, cast("asgi.Receive", receive)))


_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
# Answers worth replaying: success and business outcomes. Refusals of the request itself (malformed,
# invalid, too large) are not kept, so the client can fix the request and send it again with the same key.
_NOT_STORED = frozenset({400, 401, 403, 408, 413, 415, 422, 428, 429})
_DROP_ON_REPLAY = frozenset(
    {b"date", b"content-length", b"x-correlation-id", b"ratelimit", b"ratelimit-policy"}
)


class IdempotencyRecord(msgspec.Struct, kw_only=True):
    state: Literal["in_flight", "done"]
    fingerprint: str
    owner: str
    status: int = 0
    headers: list[tuple[bytes, bytes]] = []
    body: bytes = b""


_record_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(IdempotencyRecord)


async def _read_body(receive: asgi.Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ProblemError("malformed-request", "The client disconnected before sending the body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProblemError("payload-too-large", f"The body is larger than {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay_receive(body: bytes, receive: asgi.Receive) -> asgi.Receive:
    sent = False

    async def replay() -> asgi.Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _fingerprint(scope: Scope, body: bytes) -> str:
    try:
        # Same JSON, other whitespace or key order, is the same request. A body too deep to parse safely
        # (a route without a JSON body never had it measured) is compared as it came.
        canonical = (
            msgspec.json.encode(msgspec.json.decode(body), order="sorted")
            if body and not json_too_deep(body)
            else body
        )
    except msgspec.DecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (_method(scope).encode(), scope["path"].encode(), scope.get("query_string", b""), canonical):
        digest.update(part)
        digest.update(b"\x00")
    return digest.hexdigest()


async def _release(store: StateStore, store_key: str) -> None:
    """Free a claim whose request is not kept, so the client can retry at once. If the store is gone, the
    claim expires by itself (``idempotency_lock_seconds``); the request's own answer matters more."""
    try:
        with needed_by("idempotency"):
            await store.delete(store_key)
    except StateStoreUnavailable as exc:
        log.warning("idempotency_claim_not_released", error=repr(exc))


class Idempotency:
    """``Idempotency-Key`` on unsafe methods: replay, 422 on another body, 409 while in flight.

    Keys are per client and tier, kept ``idempotency_ttl_seconds`` (24 h) in the state store, so every
    gateway process sharing a Redis sees them. The first request claims the key atomically (SET NX); a
    crashed holder's claim expires after ``idempotency_lock_seconds``.
    """

    def __init__(self, runtime: Runtime, tier: str) -> None:
        self.runtime = runtime
        self.tier = tier

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp, opt: dict[str, Any]
    ) -> None:
        policy = opt.get("idempotency")
        key = (
            _header(scope, b"idempotency-key")
            if _method(scope) in ("POST", "PATCH", "PUT", "DELETE")
            else None
        )
        if key is None:
            if policy == "required":
                raise ProblemError("idempotency-key-required")
            await next_app(scope, receive, send)
            return
        if not _KEY_RE.match(key):
            raise ProblemError(
                "malformed-request", "Idempotency-Key must be 1 to 255 visible ASCII characters."
            )
        settings = self.runtime.settings
        body = await _read_body(cast("asgi.Receive", receive), settings.max_body_bytes)
        fingerprint = _fingerprint(scope, body)
        store = self.runtime.store
        store_key = f"idem:{self.tier}:{scope['auth'].client_id}:{key}"
        claim = IdempotencyRecord(state="in_flight", fingerprint=fingerprint, owner=uuid.uuid4().hex)

        # No claim, no run: when the store does not answer, the request is refused (503 with Retry-After,
        # the problem handler's answer to StateStoreUnavailable) rather than run without its guard.
        with needed_by("idempotency"):
            if not await store.add(
                store_key, _record_encoder.encode(claim), settings.idempotency_lock_seconds
            ):
                existing_raw = await store.get(store_key)
                if existing_raw is None:  # expired between our two calls: the claim is free again
                    if not await store.add(
                        store_key, _record_encoder.encode(claim), settings.idempotency_lock_seconds
                    ):
                        raise ProblemError("idempotency-in-flight", headers={"Retry-After": "1"})
                else:
                    await self._answer_existing(_record_decoder.decode(existing_raw), fingerprint, send)
                    return

        captured: dict[str, Any] = {"status": 0, "headers": [], "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await next_app(scope, _replay_receive(body, cast("asgi.Receive", receive)), capture)  # type: ignore[arg-type]
        except BaseException:
            await _release(store, store_key)
            raise
        status = captured["status"]
        if status == 0 or status >= 500 or status in _NOT_STORED:
            await _release(store, store_key)
            return
        done = IdempotencyRecord(
            state="done",
            fingerprint=fingerprint,
            owner=claim.owner,
            status=status,
            headers=[(k, v) for k, v in captured["headers"] if k.lower() not in _DROP_ON_REPLAY],
            body=b"".join(captured["body"]),
        )
        try:
            with needed_by("idempotency"):
                await store.set(store_key, _record_encoder.encode(done), settings.idempotency_ttl_seconds)
        except StateStoreUnavailable as exc:
            # The answer is already on its way to the client, so it stands. The claim still guards the key
            # for idempotency_lock_seconds (a retry gets 409); after that a retry would run again.
            log.error("idempotency_record_not_saved", status=status, error=repr(exc))

    async def _answer_existing(self, record: IdempotencyRecord, fingerprint: str, send: Send) -> None:
        if record.fingerprint != fingerprint:
            raise ProblemError("idempotency-key-reused")
        if record.state == "in_flight":
            raise ProblemError(
                "idempotency-in-flight",
                "The first request with this Idempotency-Key is still running.",
                headers={"Retry-After": "1"},
                extra={"retry_after": 1},
            )
        log.info("idempotent_replay", status=record.status)
        await send(
            {
                "type": "http.response.start",
                "status": record.status,
                "headers": [
                    *record.headers,
                    (b"content-length", str(len(record.body)).encode()),
                    (b"idempotent-replayed", b"true"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": record.body, "more_body": False})


class GovernanceMiddleware(ASGIMiddleware):
    """A tier's governance, one step after another: Litestar's automatic OPTIONS answered; on protected
    routes (not ``public``) the token and scopes, then the rate limit; on routes that take a body, JSON only;
    on protected routes, the ``Idempotency-Key``. Answers to authenticated calls carry ``Cache-Control:
    no-store`` (they are per client: no shared cache may keep them) and the rate-limit headers."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, runtime: Runtime, tier: str) -> None:
        self.authentication = Authentication(runtime)
        self.rate_limit = RateLimit(runtime, tier)
        self.idempotency = Idempotency(runtime, tier)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if _is_automatic_options(scope):
            await _answer_automatic_options(scope, send)
            return
        opt = _opt(scope)
        if opt.get("public"):
            if opt.get("body"):
                receive = await _json_only(scope, receive)
            await next_app(scope, receive, send)
            return
        await self.authentication.check(scope, opt)
        headers = {"Cache-Control": "no-store", **await self.rate_limit.charge(scope, opt)}
        if opt.get("body"):
            receive = await _json_only(scope, receive)
        await self.idempotency.handle(scope, receive, _with_headers(send, headers), next_app, opt)
