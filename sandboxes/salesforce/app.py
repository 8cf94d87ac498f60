"""The Salesforce sandbox: a Litestar app that answers like the Salesforce REST API on the wire.

Served at the app's own root (mount it anywhere: URLs it hands out follow Salesforce's rules, see
`create_salesforce_sandbox`):

- ``POST /services/oauth2/token``: client-credentials grant (HTTP Basic or form fields) and the JWT
  bearer grant (RS256 assertion signed with a registered client's key; `dev_jwt_private_key_pem`)
- ``GET /services/data``: API versions (no auth, like Salesforce); every version from v31.0 up to
  ``latest_api_version`` is served, any other answers 404 ``NOT_FOUND``; URLs in answers repeat the
  version the request named
- ``GET /services/data/vXX.X``, ``.../limits``
- ``GET .../sobjects/`` (describeGlobal), ``GET .../sobjects/{Obj}/`` (basic information) and
  ``GET .../sobjects/{Obj}/describe/``, all derived from the schemas (`sandboxes.salesforce.describe`)
- ``.../sobjects/{Obj}``: ``POST`` creates; ``GET/PATCH/DELETE .../{id}`` read, update, delete (a read
  with ``If-Modified-Since`` answers 304 with no body while the record is unchanged since that date);
  ``GET/PATCH .../{ExtField}/{value}`` read or upsert by external id (``?updateOnly=true``);
  ``GET .../updated/`` and ``.../deleted/`` (``?start=&end=``) are the replication change feeds
- ``.../query?q=`` and ``.../queryAll?q=`` with ``nextRecordsUrl`` paging (queryAll sees deleted rows);
  SOQL (relationship fields, subqueries, aggregate functions with GROUP BY and HAVING, date literals)
  is `sandboxes.salesforce.soql`
- ``POST .../composite``: up to 25 subrequests with ``@{ref.field}`` references and ``allOrNone``
- ``POST .../composite/sobjects``: create up to 200 records of any objects (sObject Collections), with
  ``allOrNone``
- ``/__sandbox/...``: reset, session expiry, stats and fault injection (no auth; never on vendor paths)
- ``GET /__sandbox/records/{Object}``: the live (not deleted) records of an object as held,
  ``?Field=value`` filters by equality on top-level fields (`sandboxes.admin_records`)

Each resource lives in the module the REST API Developer Guide's reference would put it in, routes and
operations together: `oauth` (token endpoint), `versions` (versions and resources by version), `limits`,
`sobjects` (describe, rows, rows by external id, change feeds), `query` (query and queryAll with
``nextRecordsUrl``), `composite` (composite and sObject Collections), `admin` (``/__sandbox``); `org`
holds the state they share, `wire` the request reading and error shapes. This module only assembles
them: the org class, the ASGI layers that authenticate and meter ``/services/data``, and the app.

Objects: ``Account``, ``Contact``, ``Opportunity``, ``Contract``, ``Opportunity_Milestone__c``,
``Rate_Card_Line__c`` and the read-only ``Organization`` (schemas and seed in `sandboxes.salesforce.data`).
Every ``/services/data/vXX.X/...`` call needs a bearer token, counts once against the daily API limit (a
composite call too) and carries ``Sforce-Limit-Info``; errors there are Salesforce's JSON arrays.

Behaviour the public documentation leaves open is decided in one place each, marked "(unverified)", so
it is easy to correct: the codes and messages of the change-feed, composite-shape, sObject Collections
and upsert-key errors (`org.MESSAGES`), the 405 answer to writes on a read-only object
(`sobjects._read_only_object`), refusing to create a contract that is already Activated, and the maximum
lifetime of a JWT assertion (`oauth._JWT_MAX_LIFETIME_SECONDS`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

import msgspec
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp as LitestarASGIApp

from sandboxes.asgi_headers import bearer_token
from sandboxes.faults import ASGIApp, Message, Receive, Scope, Send, relative_path, with_faults
from sandboxes.request_log import RequestLog, RequestLogEntry
from sandboxes.salesforce import admin, composite, limits, oauth, query, sobjects, versions
from sandboxes.salesforce.admin import ADMIN_PREFIX
from sandboxes.salesforce.composite import CompositeResources
from sandboxes.salesforce.data import SCHEMAS
from sandboxes.salesforce.keys import DEV_JWT_CONSUMER_KEY, dev_jwt_private_key_pem, dev_jwt_public_key_pem
from sandboxes.salesforce.org import (
    REQUEST_VERSION,
    MultipleMatches,
    SalesforceError,
    SalesforceSandboxSettings,
)
from sandboxes.salesforce.wire import (
    AUTH_SCHEMES,
    JSON_CONTENT_TYPE,
    on_http_exception,
    on_multiple_matches,
    on_salesforce_error,
    on_unexpected,
)
from sandboxes.salesforce.wire import read_body as _body  # noqa: F401 - tests read bodies through the app

__all__ = [
    "ADMIN_PREFIX",
    "DEV_JWT_CONSUMER_KEY",
    "SCHEMAS",
    "RequestLogEntry",
    "SalesforceError",
    "SalesforceSandbox",
    "SalesforceSandboxSettings",
    "create_salesforce_sandbox",
    "dev_jwt_private_key_pem",
    "dev_jwt_public_key_pem",
]

_DATA_PREFIX = "/services/data/"


class SalesforceSandbox(CompositeResources):
    """All mutable state of one sandbox org (`sandboxes.salesforce.org.Org`) with every resource's
    operations (`create`, `update`, `upsert`, `delete`, reads, queries, change feeds, composite): each
    all or nothing, raising `SalesforceError`; the HTTP routes and composite subrequests share them."""


# ---------------------------------------------------------------------------------------------------------
# ASGI layers around the Litestar router
# ---------------------------------------------------------------------------------------------------------


async def _send_errors(send: Send, error: SalesforceError, limit_info: str) -> None:
    body = msgspec.json.encode(error.body())
    headers = [
        (b"content-type", JSON_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"sforce-limit-info", limit_info.encode()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _ApiGate:
    """Authenticates and meters ``/services/data/vXX.X/...`` before Litestar routes the request.

    Living outside the router means unroutable paths and wrong methods are metered and labelled too,
    exactly like every other API response.
    """

    def __init__(self, app: ASGIApp, sandbox: SalesforceSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = relative_path(scope)
        if scope["type"] != "http" or not path.startswith(_DATA_PREFIX) or path == _DATA_PREFIX:
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        if not sandbox.session_valid(bearer_token(scope, AUTH_SCHEMES)):
            error = SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            await _send_errors(send, error, sandbox.limit_info())
            return
        if not sandbox.consume_api_call():
            error = SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            await _send_errors(send, error, sandbox.limit_info())
            return
        limit_info = sandbox.limit_info().encode()
        version = path[len(_DATA_PREFIX) :].partition("/")[0]
        token = REQUEST_VERSION.set(version)

        async def send_with_limit_info(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"sforce-limit-info", limit_info)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_limit_info)
        finally:
            REQUEST_VERSION.reset(token)


def create_salesforce_sandbox(
    settings: SalesforceSandboxSettings | None = None, *, clock: Callable[[], float] = time.time
) -> Litestar:
    """Build a fresh sandbox org as a Litestar app.

    Mount it anywhere by stripping the mount prefix from ``path`` and setting ASGI ``root_path``:
    ``instance_url`` is built from the request (scheme, host and ``root_path``), while
    ``attributes.url`` and ``nextRecordsUrl`` stay server-relative (``/services/data/...``) as in
    Salesforce, for clients to join onto ``instance_url``. In-process handles for tests:
    ``app.state.sandbox`` (`SalesforceSandbox`) and ``app.state.faults`` (`FaultInjector`). `clock`
    (epoch seconds) drives sessions, timestamps, the daily limit and the change feeds; tests can pass a
    settable one.
    """
    settings = settings or SalesforceSandboxSettings()
    # The schemas are read when the org is built, so an org can be built with a field not deployed.
    sandbox = SalesforceSandbox(settings, clock=clock, schemas=SCHEMAS)

    def provide_sandbox() -> SalesforceSandbox:
        return sandbox

    app = Litestar(
        route_handlers=[
            oauth.issue_token,
            versions.list_versions,
            versions.list_resources,
            limits.limits,
            sobjects.describe_global_resource,
            sobjects.sobject_basic_info,
            sobjects.sobject_describe,
            composite.create_collection,
            sobjects.create_record,
            sobjects.updated_records,
            sobjects.deleted_records,
            sobjects.read_record,
            sobjects.update_record,
            sobjects.delete_record,
            sobjects.read_by_external_id,
            sobjects.upsert_record,
            composite.composite,
            query.query,
            query.query_all,
            query.query_more,
            query.query_all_more,
            admin.reset,
            admin.expire_sessions,
            admin.stats,
            admin.stored_records,
        ],
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False)},
        exception_handlers={
            SalesforceError: on_salesforce_error,
            MultipleMatches: on_multiple_matches,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
        openapi_config=None,
        state=State({"sandbox": sandbox, "faults": sandbox.faults}),
    )
    # Faults and metering must see every request, routed or not, so they wrap Litestar's own handler
    # (inside Litestar.__call__, which still owns lifespan and scope setup) rather than being route
    # middleware, which Litestar only runs for matched routes.
    router = cast("ASGIApp", app.asgi_handler)
    wrapped = RequestLog(
        with_faults(_ApiGate(router, sandbox), sandbox.faults, ADMIN_PREFIX),
        lambda entry: sandbox.request_log.append(entry),
        ADMIN_PREFIX,
    )
    app.asgi_handler = cast("LitestarASGIApp", wrapped)
    return app
