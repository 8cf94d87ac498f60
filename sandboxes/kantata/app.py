"""The Kantata OX (formerly Mavenlink) sandbox: a Litestar app that answers like Kantata's API v1 on the wire.

Served at the app's own root; every API path also answers with a ``.json`` suffix, as Kantata's does:

- ``GET /api/v1/{collection}``: list, with Kantata's envelope ``{"count", "meta", "results",
  "<collection>": {id: record}, <side-loaded collections>}``, ``page``/``per_page`` (default 20, clamped
  to 200), ``only=``, ``order=field:asc|desc``, ``include=`` and the per-collection filters below
- ``GET /api/v1/{collection}/{id}``: one record in the same envelope; an archived workspace is 404 unless
  ``include_archived=true`` (or ``archived=include|only``); ``GET /api/v1/users/me`` is the token's user
- ``POST /api/v1/{collection}``: create from ``{"<singular>": {...}}`` or, in bulk,
  ``{"<collection>": [{...}, ...]}``; 200 with the envelope. There is NO idempotency: a repeated POST
  creates another record. Look before creating, through ``external_references``. Bodies may also be
  form-encoded the Rails way (``workspace[title]=...``, ``workspace[list][][name]=...``).
- A workspace create needs ``creator_role`` (``maven`` or ``buyer``) and takes the budget as ``price`` in
  the currency's units (stored and answered as ``price_in_cents``), per the specification shipped with
  Kantata's Ruby client (mavenlink_gem, ``lib/config/specification.yml``). Workspaces have no DELETE
  (``Mavenlink::Workspace`` is ``Indestructible``): 405; a project is archived instead.
- ``PUT`` (or ``PATCH``) ``/api/v1/{collection}/{id}``: update from ``{"<singular>": {...}}``; 200
- ``DELETE /api/v1/{collection}/{id}`` where Kantata's API docs have it: time entries (not once invoiced),
  stories (soft: ``deleted_at`` is set and the story is listed only with ``only_deleted=true`` or
  ``show_deleted=true``), participations; 204 with no content. ``DELETE /api/v1/time_entries?ids=1,2``
  and ``DELETE /api/v1/expenses?ids=1,2`` (or a body ``{"ids": "1,2"}``; up to 100) delete all or none
  and answer 200 ``{"deleted": [ids]}``; expenses have only this bulk form. Any other DELETE is 405.
- ``GET /api/v1/subscribed_events``: the pull event feed, see "Events" below
- ``/__sandbox/...``: reset, stats, time approval and fault injection (no auth; never on vendor paths)
- ``GET /__sandbox/records/{collection}``: the stored records of a collection as held (archived
  workspaces included), ``?field=value`` filters by equality on top-level fields
  (`sandboxes.admin_records`), e.g. ``external_references?service_model_ref=...``

Collections: ``workspaces``, ``stories``, ``participations``, ``workspace_resources``, ``time_entries``,
``expenses``, ``external_references``, ``invoices``, ``billing_milestones`` (list, show, create, update);
``external_payments`` (list, show, create); ``users``, ``roles`` (read only); ``subscribed_events`` (list
only). An invoice's fees are ``additional_items``/``fixed_fee_items`` records, side-loaded with the invoice.

Billing (`sandboxes.kantata.resources.invoices`, `...billing_milestones`, `...external_payments`):
``POST /api/v1/invoices`` bills exact items (``time_entry_ids``, ``expense_ids``, ``billing_milestone_ids``:
``/billing_milestones`` records, which may name a milestone story) and fees (``additional_items``,
``fixed_fee_items``: ``notes``, ``amount_in_cents``, ``taxable``), marking time and expenses
``is_invoiced`` and setting a billing milestone's ``invoice_id``; an item already invoiced is a 422 naming
it. ``PUT /api/v1/invoices/{id}`` with ``draft: false`` issues a draft, ``PUT /api/v1/invoices/{id}/cancel``
cancels (items billable again), ``DELETE /api/v1/invoices/{id}`` deletes a draft. ``POST
/api/v1/external_payments`` with ``invoice_id`` pays the whole invoice ("accepted payment"); without it, a
project-level payment of ``amount_in_cents``; its text is ``message``.

Every ``/api/...`` call needs ``Authorization: Bearer <token>`` with one of the configured tokens (401
``{"errors":[{"type":"oauth",...}]}`` otherwise) and counts against ``requests_per_second``; over it the
answer is 429 with a JSON errors body and, like Kantata, no Retry-After and no rate-limit headers. Every
response of the vendor API is ``application/json; charset=utf-8``; errors are
``{"errors": [{"type": "oauth"|"system"|"validation", "message", "field"?}]}`` (422 for validation, 404
for an unknown id or route).

Events: every create and update the sandbox performs records a subscribed event
(``<subject>:created|updated``, e.g. ``time_entry:updated``, ``workspace:created``,
``external_reference:created``), and the seed holds the events of its last two weeks. Like the real feed
they arrive duplicated and out of order, deterministically:

- Events are delivered by ``created_at`` (second resolution), oldest first; events of the same second
  come newest id first, so within a second the order is the reverse of the id order.
- An event whose serial number (``int(id) - 150000000``) is a multiple of `DUPLICATE_EVERY` (7) is
  delivered twice: in its place, and again right after the event delivered next (at the end if it is
  the last one). Both copies are in ``results``; the id-keyed ``subscribed_events`` map holds it once.
- ``created_after`` is exclusive, so a client that resumes from the last ``created_at`` it saw must
  overlap by a second and deduplicate by id. ``order`` does not apply to the feed.

Filters (besides ``only``): workspaces ``search``, ``updated_after``, ``archived=only|exclude|include``,
``include_archived`` (archived workspaces are hidden by default; ``archived`` wins over it); stories
``workspace_id``, ``story_type``, ``parent_id``, ``search``, ``updated_after``, ``only_deleted``,
``show_deleted``; participations ``workspace_id``, ``user_id``; workspace_resources
``workspace_id``, ``user_id``, ``role_id``; time_entries ``workspace_id``, ``story_id``,
``with_user_ids``, ``date_performed_between=YYYY-MM-DD:YYYY-MM-DD``, ``approved``, ``billable``,
``updated_after``, ``from_archived_workspaces`` (``approved`` is on whatever its value, as Kantata documents);
expenses ``workspace_id``, ``with_user_ids``, ``date_expensed_between`` (either side may be empty),
``approved``, ``is_billable``, ``updated_after``, ``from_archived_workspaces``; billing_milestones
``workspace_id``, ``story_id``, ``date_between`` (on ``date_to_invoice``), ``updated_after``;
invoices ``workspace_id``, ``status``, ``draft``, ``paid``, ``pending``, ``without_drafts``,
``updated_after``; external_payments ``workspace_id``, ``invoice_id``, ``updated_after``; time entries and
expenses also ``is_invoiced``; stories also ``billable``, ``state``; users ``participant_in``, ``search``;
roles ``search``; external_references ``subject_type``, ``subject_id``, ``service_name``,
``service_model``, ``service_model_ref``; subscribed_events ``created_after``, ``event_types``. Unknown
parameters are ignored, as Rails does. Comma-separated lists are accepted wherever ids or type names are.

Includes: workspaces ``participants`` (-> ``users``, adds ``participant_ids``), ``participations``,
``stories``, ``workspace_resources``, ``external_references``, ``creator``, ``primary_maven``; stories
``workspace``, ``parent``, ``sub_stories``, ``external_references``; participations and
workspace_resources ``workspace``, ``user``; time_entries ``workspace``, ``user``, ``story``; expenses
``workspace``, ``user``; invoices ``workspaces``, ``user``, ``external_references``, ``time_entries``,
``expenses``, ``billing_milestones``, ``additional_items``, ``fixed_fee_items``; billing_milestones
``workspace``, ``story``, ``invoices``, ``external_references``; external_references ``workspace`` (when
the subject is one).

Unverified
----------
Guesses about Kantata's wire format, to check against the real API (everything else follows Kantata's
public documentation and public clients):

- ``workspace_resources`` as the name and shape of staffing demand (``role_id``, ``role_name``,
  ``title``, ``user_id`` null when unstaffed, ``allocated_minutes``, ``start_date``, ``end_date``);
  ``roles`` records as ``{"id", "name"}``
- external references: the filter names ``subject_type``, ``subject_id``, ``service_name``,
  ``service_model``, ``service_model_ref`` on ``/external_references`` (the attributes themselves are
  Kantata's, per its Ruby client; other lists document ``external_reference_service_model_ref`` and
  kin, not served here); nested ``external_references_attributes`` on workspace and story creates;
  ``status`` values (seed uses ``"synced"``); no uniqueness (the same ``service_model_ref`` may be
  attached to several subjects)
- workspace status keys and colours (200 Not Started grey, 210 In Planning lightblue, 310 Active green,
  320 On Hold yellow, 400 Completed blue, 410 Cancelled red), written as ``status_key``; new workspaces
  start at 200
- workspace filters ``search`` (title, case-insensitive substring), ``updated_after`` (exclusive),
  ``include_archived``; ``only`` does not bypass the archived scope
- the workspace budget's rounding: a ``price`` with fractions of a cent is refused (422), not rounded;
  ``creator_role`` is checked but not stored or answered
- ``from_archived_workspaces`` also hiding expenses of archived workspaces by default
- ``with_user_ids`` on expenses; ``approved`` as an attribute of an expense (Kantata's Ruby client lists
  none: expense approval lives on expense report submissions; here ``POST /__sandbox/expenses/approve``);
  whether the expenses' ``approved`` filter, like the time entries', ignores its value; ``parent_id`` on
  stories; ``participant_in`` on users; ``status`` and ``draft`` on invoices
- ``is_invoiced`` as a filter on time entries and expenses (the attribute is documented; the documented
  filter lists, read as far as the stored docs go, show no such filter); ``is_billable`` as an expense filter
- invoice ``price_in_cents`` (total; Kantata's Ruby client lists only ``balance_in_cents``) and ``status``
  values (``new``, ``accepted payment``, ``cancelled``)
- ``time_entries.approved`` is read-only (approval happens through timesheet submissions,
  ``PUT /timesheet_submissions/{id}/approve``; here ``POST /__sandbox/time_entries/approve``), and an
  approved entry cannot be updated (422). No timesheet submissions or resolutions are modelled, so the
  moment of approval shows only as the entry's ``updated_at`` (Kantata's approval moment is the approval
  resolution's; whether an entry's ``updated_at`` moves on approval is not documented)
- nested ``external_references_attributes`` on invoices and billing milestones (Kantata's Ruby client names
  the create attribute ``external_reference``); billing milestone filters other than ``date_between``
- validation strictness: unknown or read-only attributes in a body are rejected with 422 naming the
  field (Rails may silently drop them); booleans must be JSON booleans; unknown ``include`` names and
  bad ``order``/filter values are 422 with ``field`` = the parameter
- error messages' wording, and 400 ``system`` for a body that is not JSON; the missing-wrapper error
  (422, ``field`` = the singular key)
- a second participation of the same user in a workspace is rejected (422 on ``user_id``)
- the 429 body (``type`` ``"system"``) and that only authenticated requests are counted, in one window
  per calendar second shared by every token
- the default order (id ascending) and ``order`` fields; ``page_count`` is 0 for an empty list;
  ``page``/``per_page`` below 1 are treated as 1 and non-numbers are 422
- POST to a read-only collection answering 404 (no such route); PATCH accepted like PUT (Rails routes)
- ``include=stories``, ``workspace_resources``, ``creator``, ``primary_maven`` on workspaces and
  ``sub_stories`` on stories; the ``<association>_ids`` field names added by an include
- ``time_in_minutes`` between 1 and 1440; a time entry's default ``rate_in_cents`` (the user's role
  rate in the workspace currency, 0 for the API user) and default ``user_id`` (the token's user)
- timestamps in UTC (``+00:00``); the real API answers in the account's time zone
- ``subject_type`` values accepted by ``external_references`` (``Workspace``, ``Story``,
  ``TimeEntry``, ``Expense``, ``Invoice``, ``Participation``, ``User``)
- deletes: no subscribed event is published for one; the 422 (``field`` ``id``) for an invoiced record
  and refusing invoiced expenses at all; the bulk delete's 200 body; a soft-deleted story answering 404 on
  show and on a second DELETE; a participation's delete leaving the user's other project data
- the subscribed event shape (``id``, ``event_type``, ``subject_type``, ``subject_id``, ``created_at``,
  ``payload`` = the subject as it was after the change), event type names
  (``<snake_subject>:created|updated``), the ``event_types`` and ``created_after`` semantics

Where things live
-----------------
`sandboxes.kantata.resources` has one module per resource, as Kantata's API docs group them
(``workspaces``, ``users``, ``time_entries``, ``expenses``, ``stories``, ``participations``,
``workspace_resources``, ``invoices``, ``roles``, ``external_references``, ``subscribed_events``):
its fields, filters, includes and write rules. `sandboxes.kantata.routes` serves them all through one
list/show/create/update route each; `sandboxes.kantata.account` holds the account's state and the
generic behaviour; `sandboxes.kantata.wire` the shared wire conventions (errors, bodies, paging,
includes, order); `sandboxes.kantata.admin` the ``/__sandbox`` routes. This module assembles the app.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException

from sandboxes.asgi_headers import bearer_token
from sandboxes.assembly import sandbox_app, send_json
from sandboxes.faults import ASGIApp, Receive, Scope, Send, relative_path
from sandboxes.kantata.account import KantataSandbox, KantataSandboxSettings
from sandboxes.kantata.admin import (
    ExpenseApproval,
    TimeApproval,
    approve_expenses,
    approve_time,
    reset,
    stats,
    stored_records,
)
from sandboxes.kantata.resources.subscribed_events import DUPLICATE_EVERY
from sandboxes.kantata.routes import (
    cancel_invoice_route,
    create_records,
    delete_record,
    delete_records,
    list_records,
    show_record,
    update_record,
)
from sandboxes.kantata.wire import (
    _JSON,
    ADMIN_PREFIX,
    API_PREFIX,
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    KantataError,
    _json,
    _no_route,
)
from sandboxes.kantata.wire import _json_body as _json_body  # read by tests/gateway/test_hostile_input.py
from sandboxes.request_log import RequestLogEntry

__all__ = [
    "ADMIN_PREFIX",
    "API_PREFIX",
    "DEFAULT_PER_PAGE",
    "DUPLICATE_EVERY",
    "MAX_PER_PAGE",
    "ExpenseApproval",
    "KantataError",
    "KantataSandbox",
    "KantataSandboxSettings",
    "RequestLogEntry",
    "TimeApproval",
    "create_kantata_sandbox",
]


logger = logging.getLogger(__name__)


def _on_kantata_error(_: Request[Any, Any, Any], exc: KantataError) -> Response[bytes]:
    return _json(exc.body(), exc.status, exc.headers)


def _is_api(request: Request[Any, Any, Any]) -> bool:
    return relative_path(request.scope).startswith(API_PREFIX + "/")  # type: ignore[arg-type]


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if not _is_api(request):
        return _json({"status_code": exc.status_code, "detail": exc.detail}, exc.status_code, exc.headers)
    if exc.status_code == 404:
        return _json(_no_route().body(), 404)
    message = "Method not allowed" if exc.status_code == 405 else exc.detail
    return _json(KantataError.system(exc.status_code, message).body(), exc.status_code, exc.headers)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("kantata sandbox failed on %s %s", request.method, request.url.path, exc_info=exc)
    if _is_api(request):
        return _json(KantataError.system(500, "An unexpected error occurred").body(), 500)
    return _json({"status_code": 500, "detail": "Internal Server Error"}, 500)


# ---------------------------------------------------------------------------------------------------------
# ASGI layers around the Litestar router
# ---------------------------------------------------------------------------------------------------------


async def _send_errors(send: Send, error: KantataError) -> None:
    await send_json(send, error.status, error.body(), _JSON, error.headers)


_UNAUTHORIZED = KantataError(401, [{"type": "oauth", "message": "Invalid OAuth 2 Access Token"}])
_RATE_LIMITED = KantataError.system(429, "Rate limit exceeded. Please slow down and try again later.")


class _ApiGate:
    """Authenticates and rate-limits ``/api/...`` before Litestar routes it, and drops a ``.json`` suffix.

    Living outside the router means unroutable paths and wrong methods are authenticated and counted
    too, exactly like every other API request.
    """

    def __init__(self, app: ASGIApp, sandbox: KantataSandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = relative_path(scope)
        if scope["type"] != "http" or not (path == "/api" or path.startswith("/api/")):
            await self.app(scope, receive, send)
            return
        if not self.sandbox.authenticate(bearer_token(scope)):
            await _send_errors(send, _UNAUTHORIZED)
            return
        if not self.sandbox.admit_request():
            await _send_errors(send, _RATE_LIMITED)
            return
        if path.endswith(".json"):
            # "/api/v1/workspaces/7.json" is "/api/v1/workspaces/7" to Kantata; the router knows the latter.
            scope = {**scope, "path": scope["path"][: -len(".json")]}
            raw_path = scope.get("raw_path")
            if isinstance(raw_path, bytes) and raw_path.endswith(b".json"):
                scope["raw_path"] = raw_path[: -len(b".json")]
        await self.app(scope, receive, send)


def create_kantata_sandbox(settings: KantataSandboxSettings | None = None) -> Litestar:
    """Build a fresh sandbox account as a Litestar app.

    Mount it anywhere by stripping the mount prefix from ``path`` and setting ASGI ``root_path``; every
    path it matches and hands out is relative to its own root. In-process handles for tests:
    ``app.state.sandbox`` (`KantataSandbox`, whose ``clock`` may be replaced) and ``app.state.faults``
    (`FaultInjector`).
    """
    settings = settings or KantataSandboxSettings()
    sandbox = KantataSandbox(settings)
    return sandbox_app(
        sandbox,
        route_handlers=[
            list_records,
            show_record,
            create_records,
            update_record,
            delete_record,
            delete_records,
            cancel_invoice_route,
            reset,
            approve_time,
            approve_expenses,
            stats,
            stored_records,
        ],
        exception_handlers={
            KantataError: _on_kantata_error,
            HTTPException: _on_http_exception,
            Exception: _on_unexpected,
        },
        gate=lambda router: _ApiGate(router, sandbox),
        admin_prefix=ADMIN_PREFIX,
    )
