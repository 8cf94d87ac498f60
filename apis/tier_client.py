"""Base of the typed clients one tier uses to call another over its HTTP contract.

In the single-process default the transport is in process (``httpx.ASGITransport`` to the tier app,
through the same edge and governance as any caller); with a base URL the same client calls a remote
deployment. Every call carries the calling tier's own token (client credentials), the correlation id and
the original caller (``X-Stratum-On-Behalf-Of``) for audit and for the called tier's rate limit, which
charges an inner call to that caller, not to the shared tier client. A workflow step's call carries the
client that started the run as the original caller, and the run (``X-Stratum-Run-ID``, with the run's own
correlation id in ``X-Stratum-Run-Correlation-ID``), so the called tier logs it and charges the call to the
workflows' budget. A problem answered by the called tier is re-raised as the same problem, so a vendor
outage three tiers down still reaches the caller as a 503, and the caller's own exhausted inner budget as
its 429.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import msgspec

from apis.context import current_access, current_correlation_id, current_run
from apis.json_limits import json_too_deep
from apis.problems import PROBLEM_KINDS, FieldError, ProblemError

__all__ = ["TierClient"]

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


async def _add_context(request: httpx.Request) -> None:
    if correlation_id := current_correlation_id():
        request.headers["X-Correlation-ID"] = correlation_id
    access = current_access()
    run = current_run()
    if access is not None:
        request.headers["X-Stratum-On-Behalf-Of"] = access.on_behalf_of or access.client_id
    elif run is not None and run.started_by:
        request.headers["X-Stratum-On-Behalf-Of"] = run.started_by
    if run is not None:
        request.headers["X-Stratum-Run-ID"] = run.run_id
        request.headers["X-Stratum-Run-Correlation-ID"] = run.correlation_id


class TierClient:
    tier: str = "tier"

    def __init__(
        self,
        *,
        base_url: str,
        auth: httpx.Auth,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 15.0,
        max_connections: int = 100,
    ) -> None:
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
        try:
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

    def _problem(self, response: httpx.Response) -> ProblemError:
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
