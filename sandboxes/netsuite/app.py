"""The NetSuite sandbox: a Litestar app that answers like SuiteTalk REST web services on the wire.

This module only assembles the app. The routes live by REST resource, where Oracle's REST web services
documentation puts them: `auth` (OAuth 2.0 token), `records` (the record service) with `metadata` (its
metadata catalog), `query` (the query
service, SuiteQL), `jobs` (asynchronous requests) and `admin` (the sandbox's own ``/__sandbox``); the
account's state and rules are `account`, the shared response helpers `responses`.

Served at the app's own root (mount it anywhere, see `create_netsuite_sandbox`):

- ``POST /services/rest/auth/oauth2/v1/token``: OAuth 2.0 client credentials with a JWT client assertion
  signed by a registered certificate (RFC 7523 ``private_key_jwt``)
- ``/services/rest/record/v1/{type}``: list (``limit``, ``offset``, ``q``) and create (204 + ``Location``);
  ``.../{type}/{id}`` and ``.../{type}/eid:{externalId}``: read, update (PATCH), upsert (PUT, ``eid:``
  only), delete; ``.../{type}/{id}/{sublist}``: a sublist's lines; ``POST .../invoice/{id}/!transform/
  creditMemo``: a credit memo made from the invoice and applied to it
- ``GET /services/rest/record/v1/metadata-catalog[/{type}]``: the record types and a type's JSON Schema
- ``POST /services/rest/query/v1/suiteql``: SuiteQL (``Prefer: transient`` required)
- ``GET /services/rest/async/v1/job/{id}[/task[/{taskId}[/result]]]``: asynchronous requests
  (``Prefer: respond-async`` -> 202, ``Location`` of the job, ``Preference-Applied``), optionally with
  ``X-NetSuite-Idempotency-Key`` (a reused key: 400 ``IDEMPOTENCY_ERROR`` with ``Location`` of the first
  job; on a synchronous request the key is ignored), as Oracle documents them in "REST Web Services
  Request Processing" and "Sending an Asynchronous Request Using an Idempotency Key"
- writes take ``X-NetSuite-PropertyNameValidation`` (``Warning`` by default: an unknown body property is
  dropped with a ``Warning`` header; ``Error`` refuses it; ``Ignore`` drops it silently)
- ``/__sandbox/...``: reset, token expiry, stats and fault injection (no auth; never on vendor paths)
- ``GET /__sandbox/records/{type}``: the stored records of a record type (``customer``, ``job``,
  ``billingSchedule``, ...) as held, ``?field=value`` filters by equality on top-level fields
  (`sandboxes.admin_records`); refs are stored as bare internal ids, e.g. ``?project=3002``

Every ``/services/rest/...`` call except the token endpoint needs a bearer token and counts against the
account's concurrency limit while it is in flight (over it: 429). Errors are NetSuite's
``{"type", "title", "status", "o:errorDetails": [{"detail", "o:errorCode", "o:errorPath"}]}``.

Wire choices the sandbox had to make without a NetSuite account to compare against are marked
"(unverified)" where they are made, so they are easy to find and correct.
"""

from typing import cast

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp as LitestarASGIApp

from sandboxes.asgi_headers import bearer_token
from sandboxes.faults import ASGIApp, Receive, Scope, Send, relative_path, with_faults
from sandboxes.netsuite.account import (
    ADMIN_PREFIX,
    NetSuiteClient,
    NetSuiteError,
    NetSuiteSandbox,
    NetSuiteSandboxSettings,
    Outcome,
    _problem,
    dev_client,
)
from sandboxes.netsuite.admin import (
    expire_tokens,
    reset,
    stats,
    stored_records,
)
from sandboxes.netsuite.auth import (
    _AuthGate,
    issue_token,
)
from sandboxes.netsuite.jobs import (
    list_tasks,
    read_job,
    read_task,
    read_task_result,
)
from sandboxes.netsuite.metadata import metadata_catalog, record_metadata
from sandboxes.netsuite.query import (
    suiteql,
)
from sandboxes.netsuite.records import (
    create_record,
    delete_record,
    list_records,
    read_record,
    read_sublist,
    transform_record,
    update_record,
    upsert_record,
)
from sandboxes.netsuite.responses import (
    _decode,  # noqa: F401 (kept importable here: the hostile-input tests reach it as app._decode)
    _governed,
    _on_http_exception,
    _on_netsuite_error,
    _on_unexpected,
    _send_problem,
)
from sandboxes.request_log import RequestLog, RequestLogEntry

__all__ = [
    "ADMIN_PREFIX",
    "NetSuiteClient",
    "NetSuiteError",
    "NetSuiteSandbox",
    "NetSuiteSandboxSettings",
    "Outcome",
    "RequestLogEntry",
    "create_netsuite_sandbox",
    "dev_client",
]

# ---------------------------------------------------------------------------------------------------------
# ASGI layers around the Litestar router
# ---------------------------------------------------------------------------------------------------------


class _Governor:
    """NetSuite's concurrency governance: counts authenticated API requests in flight, 429 over the limit.

    It sits outside fault injection, so a latency fault keeps its request in flight and parallel calls
    pile up exactly as they would against a slow account.
    """

    def __init__(self, app: ASGIApp, sandbox: NetSuiteSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sandbox = self.sandbox
        if (
            scope["type"] != "http"
            or not _governed(relative_path(scope))
            or not sandbox.token_valid(bearer_token(scope))
        ):
            await self.app(scope, receive, send)
            return
        if sandbox.in_flight >= sandbox.settings.concurrency_limit:
            sandbox.throttled += 1
            # Unverified: the exact wording; the code is the one NetSuite documents for REST.
            body = _problem(
                429,
                "CONCURRENCY_LIMIT_EXCEEDED",
                "Concurrent request limit exceeded. Request blocked.",
            )
            await _send_problem(send, 429, body, [])
            return
        sandbox.in_flight += 1
        sandbox.peak_in_flight = max(sandbox.peak_in_flight, sandbox.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            sandbox.in_flight -= 1


def create_netsuite_sandbox(settings: NetSuiteSandboxSettings | None = None) -> Litestar:
    """Build a fresh sandbox account as a Litestar app.

    Mount it anywhere by stripping the mount prefix from ``path`` and setting ASGI ``root_path``: every
    absolute URL it hands out (``Location``, ``links[].href``) is built from the request's scheme, host
    and ``root_path``, and the client assertion's ``aud`` may be the token URL as served there (or the
    account's real token URL). In-process handles for tests: ``app.state.sandbox`` (`NetSuiteSandbox`) and
    ``app.state.faults`` (`FaultInjector`).
    """
    settings = settings or NetSuiteSandboxSettings()
    sandbox = NetSuiteSandbox(settings)

    def provide_sandbox() -> NetSuiteSandbox:
        return sandbox

    app = Litestar(
        route_handlers=[
            issue_token,
            metadata_catalog,
            record_metadata,
            list_records,
            create_record,
            read_record,
            read_sublist,
            transform_record,
            update_record,
            upsert_record,
            delete_record,
            suiteql,
            read_job,
            list_tasks,
            read_task,
            read_task_result,
            reset,
            expire_tokens,
            stats,
            stored_records,
        ],
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False)},
        exception_handlers={
            NetSuiteError: _on_netsuite_error,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        openapi_config=None,
        state=State({"sandbox": sandbox, "faults": sandbox.faults}),
    )
    # Governance, faults and auth must see every request, routed or not, so they wrap Litestar's own
    # handler (inside Litestar.__call__, which still owns lifespan and scope setup).
    router = cast("ASGIApp", app.asgi_handler)
    gated = with_faults(_AuthGate(router, sandbox), sandbox.faults, ADMIN_PREFIX)
    app.asgi_handler = cast(
        "LitestarASGIApp",
        RequestLog(_Governor(gated, sandbox), lambda entry: sandbox.request_log.append(entry), ADMIN_PREFIX),
    )
    return app
