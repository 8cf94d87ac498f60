"""The Workday Adaptive Planning sandbox: a Litestar app that answers like Adaptive's XML API on the wire.

Sources: the Adaptive Knowledge Center's API pages (knowledge.adaptiveplanning.com, Integration > Managing
Data Integration > API Documentation): "Adaptive REST API" (one endpoint with the version appended,
``https://api.adaptiveinsights.com/api/v{NN}``; every call stateless and authenticated on its own; a
version supported at least a year after its successor), "Request and Response Message Formats" (the
``<call method callerName>`` envelope, ``callerName`` required, ``<response success>`` with ``<messages>``
and ``<output>``), "exportVersions", "importCubeData" (the ``importDataOptions``/``version``/``rowData``
shape, pipe-separated ``header`` and ``row``s, ``MM/YYYY`` period columns, shared with
``importStandardData``), "exportConfigurableModelData" (``filters`` with ``timeSpan``/``levels``), "API
Changes by Release" (exportData's ``includeRollupAccounts``/``includeRollupLevels``), and a public
client's exportData call (``format useInternalCodes``, ``filters`` ``accounts``/``levels``/
``dimensionValues``/``timeSpan``, ``dimensions``, ``rules`` with ``currency useCorporate/useLocal``, the
CSV answer read from ``<output>``'s text); the public Python client wdadaptivepy for the method set.

- ``POST /api/v{NN}`` (v38, v39, v40 by default), ``Content-Type: text/xml`` (or ``application/xml``);
  the body ``<call method=".." callerName=".."><credentials login password [instanceCode]/>...</call>``.
- Every answer is ``<response success="true|false">`` with ``<messages><message key>`` and ``<output>``,
  HTTP 200 whether or not the call succeeded (a client checks ``success``): bad credentials, an unknown
  method, a missing ``callerName``, malformed XML, an unknown version, account, level, dimension or
  dimension value, a locked version.
- Methods: ``exportVersions``, ``exportAccounts``, ``exportLevels`` (each level's ``currency``),
  ``exportDimensions``, ``importStandardData`` and ``exportData``; see `sandboxes.adaptive.instance`.
- ``importStandardData``: ``importDataOptions planOrActuals="Plan|Actuals"`` must match the version's type;
  the header is ``Account|Level|[Project|]MM/YYYY|...``. A valid cell overwrites its cell (so a repeat is
  harmless); a blank leaves it alone; a zero empties it. A refused row or cell is reported in a message
  (``Row n: ...`` or ``Row n, MM/YYYY: ...``) and the rest is imported; nothing imported and something
  refused answers ``success="false"``. The Project dimension creates a value the first time a row names it.
- ``exportData``: the version's figures summed into rows of account, level (and each dimension in
  ``<dimensions>``) with a column per month, as CSV (``Account Name,Account Code,Level Name,[Project,]
  MM/YYYY,...``) in a CDATA block; rows that are all zero are left out unless ``includeZeroRows``; values in
  the level's currency unless ``rules/currency`` says ``useCorporate`` or an ``override``.
- ``/__sandbox/...``: reset, stats, records (``cells``, ``dimension_values``) and fault injection.

Unverified
----------
Chosen without an Adaptive instance to compare against, and kept here so they are easy to correct:

- the message keys (``error-authentication-failure``, ``error-invalid-method``...) and texts;
- an unknown API version answering HTTP 200 ``success="false"`` (key ``error-invalid-api-version``);
  another path 404; a content type other than XML 415;
- the exportData CSV header's exact column names, and a blank row not being exported;
- refused cells being reported per ``Row n, MM/YYYY`` while the rest of the import goes on;
- the Project dimension creating values on import (``autoCreate``); the exchange rates;
- no concurrent-call limit: Adaptive publishes none for the XML API, so the sandbox enforces none.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from typing import Any, cast
from xml.parsers import expat

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath

from sandboxes.adaptive.instance import (
    AdaptiveSandbox,
    AdaptiveSandboxSettings,
    CallRefused,
    Result,
    _Sandbox,
    failure,
    render,
)
from sandboxes.admin_records import RECORDS_PATH, records_response
from sandboxes.assembly import sandbox_app
from sandboxes.faults import ASGIApp, Scope, relative_path

__all__ = ["ADMIN_PREFIX", "AdaptiveSandbox", "AdaptiveSandboxSettings", "create_adaptive_sandbox"]

ADMIN_PREFIX = "/__sandbox"
XML = "text/xml;charset=UTF-8"
_MAX_BODY = 32 * 1024 * 1024
_VERSION = re.compile(r"^v([0-9]{1,3})$")
logger = logging.getLogger(__name__)


def _xml(body: bytes, status: int = 200) -> Response[bytes]:
    return Response(body, status_code=status, media_type=XML)


def _refuse_declaration(*_: Any) -> None:
    raise ValueError("Document type and entity declarations are not accepted")


def parse_call(body: bytes) -> ET.Element:
    """The ``<call>`` element of a request body; raises ValueError when it is not one. A document type or
    entity declaration is refused as the parser meets it (what defusedxml does): no entity in a request is
    ever expanded."""
    # expat feeding ElementTree's tree builder, with the declaration handlers raising: defusedxml is not a
    # dependency, and the C ElementTree parser does not expose expat's handlers.
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse_declaration
    parser.EntityDeclHandler = _refuse_declaration
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(body, True)
        root = builder.close()
    except (expat.ExpatError, AssertionError) as exc:
        raise ValueError(f"Malformed XML: {exc}") from None
    if root.tag != "call":
        raise ValueError("The document element must be call")
    return root


@post("/api/{version:str}", status_code=200)
async def api_call(
    request: Request[Any, Any, Any], version: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    match = _VERSION.fullmatch(version)
    if match is None:
        return _xml(b"Not Found", 404)
    if int(match.group(1)) not in sandbox.settings.api_versions:
        served = ", ".join(f"v{n}" for n in sandbox.settings.api_versions)
        return _xml(
            failure("error-invalid-api-version", f"API version {version} is not supported ({served})")
        )
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in ("text/xml", "application/xml"):
        return _xml(failure("error-invalid-content-type", "The request body must be XML (text/xml)"), 415)
    try:
        call = parse_call(await request.body())
    except ValueError as exc:
        return _xml(failure("error-malformed-request", str(exc)[:300]))
    if not (call.get("callerName") or "").strip():
        return _xml(failure("error-missing-caller-name", "The callerName attribute is required on call"))
    method = call.get("method") or ""
    try:
        sandbox.authenticate(call)
    except CallRefused as refused:
        return _xml(failure(refused.key, refused.text))
    result: Result = sandbox.dispatch(method, call)
    return _xml(render(result))


@post(f"{ADMIN_PREFIX}/reset", status_code=204)
async def reset(sandbox: _Sandbox) -> None:
    sandbox.reset()


@get(f"{ADMIN_PREFIX}/stats")
async def stats(sandbox: _Sandbox) -> Response[bytes]:
    body = {"calls": sandbox.calls, "requests": msgspec.to_builtins(list(sandbox.request_log))}
    return Response(msgspec.json.encode(body), media_type="application/json")


@get(ADMIN_PREFIX + RECORDS_PATH)
async def stored_records(
    request: Request[Any, Any, Any], record_type: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    return records_response(sandbox.stored(), record_type, request.query_params.multi_items())


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    path = relative_path(cast("Scope", request.scope))
    if path.startswith("/api/"):
        return _xml(failure("error-http", str(exc.detail)), exc.status_code)
    body = {"status_code": exc.status_code, "detail": exc.detail}
    return Response(msgspec.json.encode(body), status_code=exc.status_code, media_type="application/json")


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("adaptive sandbox failed on %s %s", request.method, request.url.path, exc_info=exc)
    return _xml(failure("error-internal", "An internal error occurred"), 500)


def create_adaptive_sandbox(settings: AdaptiveSandboxSettings | None = None) -> Litestar:
    """Build a fresh sandbox instance as a Litestar app. In-process handles for tests:
    ``app.state.sandbox`` (`AdaptiveSandbox`) and ``app.state.faults`` (`FaultInjector`)."""
    sandbox = AdaptiveSandbox(settings or AdaptiveSandboxSettings())

    def no_gate(router: ASGIApp) -> ASGIApp:
        return router  # every call carries its credentials: the method authenticates it

    return sandbox_app(
        sandbox,
        route_handlers=[api_call, reset, stats, stored_records],
        exception_handlers={HTTPException: _on_http_exception, Exception: _on_unexpected},
        gate=no_gate,
        admin_prefix=ADMIN_PREFIX,
        request_max_body_size=_MAX_BODY,
    )
