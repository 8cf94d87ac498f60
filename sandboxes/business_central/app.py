"""The Business Central sandbox: a Litestar app that answers like Dynamics 365 Business Central API v2.0.

Served at the app's own root (mount it anywhere, see `create_business_central_sandbox`):

- ``POST /{tenant}/oauth2/v2.0/token``: Microsoft Entra ID's token endpoint, client credentials only
  (``client_id`` + ``client_secret`` in the form, or HTTP Basic), ``scope`` =
  ``https://api.businesscentral.dynamics.com/.default``; Entra's error shape (``error``,
  ``error_description`` with an ``AADSTS`` code, ``error_codes``, ``trace_id``...)
- ``/v2.0/{tenant}/{environment}/api/v2.0/``: ``companies`` and ``companies({id})``; per company
  ``customers``, ``projects``, ``salesInvoices`` (with ``salesInvoiceLines``, as a navigation
  ``salesInvoices({id})/salesInvoiceLines``, by ``$expand`` and by deep insert), ``customerPayments``;
  ``salesInvoices({id})/Microsoft.NAV.post`` posts a draft invoice (204)
- ``GET .../api/v2.0/$metadata``: the OData CSDL (EDMX) document describing what is served, derived from
  the entity sets' own definitions (``application/xml``); every ``@odata.context`` points into it.
  Unverified: the container's name (``default``) and the enum type names (the property's name)
- lists take ``$filter $select $orderby $top $skip $count=true $expand``; server-driven paging with
  ``@odata.nextLink`` (`BusinessCentralSandboxSettings.page_size` a page, or ``Prefer:
  odata.maxpagesize=N``, acknowledged in ``Preference-Applied``); ``{entitySet}/$count`` answers the count
  as ``text/plain`` (with a UTF-8 byte-order mark, which is why public clients decode it ``utf-8-sig``)
- every entity has ``@odata.etag`` (a new one on every change); ``PATCH`` and ``DELETE`` need ``If-Match``
  (that etag or ``*``): without it 400, with a stale one 412 ``Request_EntityChanged``; ``POST`` answers
  201 with the entity and ``Location``; ``PATCH`` 200 with the entity; ``DELETE`` 204
- errors are ``{"error": {"code", "message"}}`` with Business Central's codes (``BadRequest``,
  ``BadRequest_NotFound``, ``Internal_EntityWithSameKeyExists``, ``Request_EntityChanged``,
  ``Authentication_InvalidCredentials``, ``TooManyRequests``...); messages end with "CorrelationId: ..."
- limits: `rate_limit_requests` per `rate_limit_window_seconds` sliding window per principal (the token's
  client id; Business Central allows 6,000 per 5 minutes) and `concurrency_limit` requests in flight; over
  either, 429 with ``Retry-After``
- ``/__sandbox/...``: reset, token expiry, stats, fault injection and ``GET /__sandbox/records/{type}``
  (``companies``, ``customers``, ``projects``, ``salesInvoices``, ``customerPayments``: the stored
  entities, internal ``companyId`` and ``rowVersion`` included; `sandboxes.admin_records`)

Where each part lives, as Microsoft's API v2.0 reference groups them: `entra` (the token endpoint),
`api` (the routes of the API, resolving OData paths with `urls`), one module per resource (`companies`,
`customers`, `projects`, `sales_invoices` with ``salesInvoiceLines`` and ``Microsoft.NAV.post``,
`customer_payments`, `tax_areas`), `metadata` (``$metadata``), `batch` (``$batch``), `subscriptions` and
`webhooks`, `admin` (``/__sandbox``), `gates` (token gate and limits); shared: `sandbox` (the state),
`entities`, `wire` (OData on the wire), `odata` (query options), `errors`, `settings`. This module only
assembles the Litestar app.

Money travels as JSON numbers and is held as ``Decimal`` (never a float). Wire choices made without a
tenant to compare against are marked "(unverified)" where they are made. Simplifications: no tax (0 %),
no units of measure or items (invoice lines are G/L ``Account`` or ``Comment`` lines), payments are posted
as soon as they are inserted and stay listed (in Business Central they are payment-journal lines that
leave the journal when posted), ``projects`` has only the API's three fields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp as LitestarASGIApp

from sandboxes.business_central.admin import ADMIN_PREFIX, expire_tokens, reset, stats, stored_records
from sandboxes.business_central.api import api_root, create, read, remove, update
from sandboxes.business_central.entities import EntitySet
from sandboxes.business_central.entra import BC_SCOPE, issue_token
from sandboxes.business_central.errors import BusinessCentralError, error_body
from sandboxes.business_central.gates import AuthGate, Governor
from sandboxes.business_central.odata import ODataError
from sandboxes.business_central.sandbox import BusinessCentralSandbox
from sandboxes.business_central.settings import BusinessCentralClient, BusinessCentralSandboxSettings

# Each sandbox's body reader, where tests/gateway/test_hostile_input.py finds it (``app._body``).
from sandboxes.business_central.wire import json_response
from sandboxes.business_central.wire import read_body as _body  # noqa: F401
from sandboxes.faults import ASGIApp, with_faults
from sandboxes.request_log import RequestLog

__all__ = [
    "ADMIN_PREFIX",
    "BC_SCOPE",
    "BusinessCentralClient",
    "BusinessCentralError",
    "BusinessCentralSandbox",
    "BusinessCentralSandboxSettings",
    "EntitySet",
    "api_root",
    "create_business_central_sandbox",
]

logger = logging.getLogger(__name__)


def _on_error(_: Request[Any, Any, Any], exc: BusinessCentralError) -> Response[bytes]:
    return json_response(exc.body(), exc.status, exc.headers)


def _on_odata_error(_: Request[Any, Any, Any], exc: ODataError) -> Response[bytes]:
    return json_response(error_body("BadRequest", exc.message), 400)


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if exc.status_code == 404:
        return json_response(
            error_body("BadRequest_NotFound", "No HTTP resource was found that matches the request URI."),
            404,
        )
    if exc.status_code == 405:
        message = f"The HTTP method '{request.method}' is not allowed on this resource."
        return json_response(error_body("BadRequest_MethodNotAllowed", message), 405, exc.headers)
    return json_response(error_body("BadRequest", exc.detail), exc.status_code)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception(
        "business central sandbox failed on %s %s", request.method, request.url.path, exc_info=exc
    )
    return json_response(error_body("Internal_ServerError", "An unexpected error occurred."), 500)


def create_business_central_sandbox(
    settings: BusinessCentralSandboxSettings | None = None, *, clock: Callable[[], float] = time.time
) -> Litestar:
    """Build a fresh sandbox tenant as a Litestar app.

    Mount it anywhere by stripping the mount prefix from ``path`` and setting ASGI ``root_path``: every
    absolute URL it hands out (``@odata.context``, ``@odata.nextLink``, ``Location``) is built from the
    request's scheme, host and ``root_path``. In-process handles for tests: ``app.state.sandbox``
    (`BusinessCentralSandbox`, whose ``clock`` may be replaced) and ``app.state.faults`` (`FaultInjector`).
    """
    settings = settings or BusinessCentralSandboxSettings()
    sandbox = BusinessCentralSandbox(settings, clock=clock)

    def provide_sandbox() -> BusinessCentralSandbox:
        return sandbox

    app = Litestar(
        route_handlers=[
            issue_token,
            read,
            create,
            update,
            remove,
            reset,
            expire_tokens,
            stats,
            stored_records,
        ],
        dependencies={"sandbox": Provide(provide_sandbox, sync_to_thread=False)},
        exception_handlers={
            BusinessCentralError: _on_error,
            ODataError: _on_odata_error,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        openapi_config=None,
        state=State({"sandbox": sandbox, "faults": sandbox.faults}),
    )
    router = cast("ASGIApp", app.asgi_handler)
    gated = with_faults(AuthGate(router, sandbox), sandbox.faults, ADMIN_PREFIX)
    app.asgi_handler = cast(
        "LitestarASGIApp",
        RequestLog(Governor(gated, sandbox), lambda entry: sandbox.request_log.append(entry), ADMIN_PREFIX),
    )
    return app
