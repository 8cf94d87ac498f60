"""Workspaces (projects), as Kantata's API docs describe them: ``GET/POST /api/v1/workspaces``,
``GET/PUT /api/v1/workspaces/{id}``; archived workspaces hidden unless ``archived=`` or ``include_archived=``
asks for them. No DELETE: ``Mavenlink::Workspace`` is ``Indestructible`` in mavenlink_gem.

Also the archived-workspace scope that time entries and expenses share (``from_archived_workspaces``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Context, Decimal
from typing import TYPE_CHECKING

from sandboxes.kantata.data import ADMIN_USER_ID, Record, status_of
from sandboxes.kantata.schema import (
    _MAX_PRICE_EXPONENT,
    _TIMESTAMP_ORDERS,
    _after,
    _Association,
    _belongs_to,
    _check_dates,
    _currency_fields,
    _Errors,
    _Field,
    _has_many,
    _parse_bool,
    _Predicate,
    _references_of,
    _Resource,
    _search,
)
from sandboxes.kantata.wire import KantataError, _validation

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


_NEW_WORKSPACE_STATUS = 200


def _archived_workspaces(sandbox: KantataSandbox) -> set[str]:
    return {key for key, workspace in sandbox.records["workspaces"].items() if workspace["archived"]}


_ARCHIVED_CHOICES = {
    "only": lambda record: record["archived"],
    "exclude": lambda record: not record["archived"],
    "include": None,
}


def _unarchived_scope(sandbox: KantataSandbox, params: Mapping[str, str]) -> _Predicate | None:
    # Kantata's workspace docs: `archived=only|exclude|include` picks archived workspaces, and
    # `include_archived=true` is the older way to say include; neither given hides archived workspaces.
    if "archived" in params:
        if params["archived"] not in _ARCHIVED_CHOICES:
            raise KantataError.invalid("archived", "archived must be one of only, exclude, include")
        return _ARCHIVED_CHOICES[params["archived"]]
    if "include_archived" in params and _parse_bool("include_archived", params["include_archived"]):
        return None
    return lambda record: not record["archived"]


def _in_unarchived_workspace(sandbox: KantataSandbox, params: Mapping[str, str]) -> _Predicate | None:
    param = "from_archived_workspaces"
    if param in params and _parse_bool(param, params[param]):
        return None
    archived = _archived_workspaces(sandbox)
    return lambda record: record["workspace_id"] not in archived


def _prepare_workspace(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is None:
        defaults: Record = {
            "description": None,
            "budgeted": False,
            "price_in_cents": None,
            "currency": "USD",
            "start_date": None,
            "due_date": None,
            "status": status_of(_NEW_WORKSPACE_STATUS),
            "creator_id": ADMIN_USER_ID,
            "primary_maven_id": None,
            "archived": False,
            "consultant_role_name": "Consultants",
            "client_role_name": "Clients",
        }
        for key, value in defaults.items():
            record.setdefault(key, value)
        _currency_fields(record)
    # The API user's side in the project decides its participation in Kantata; the sandbox keeps only the
    # API user as creator, so the role is checked and not stored (Kantata does not echo it either).
    record.pop("creator_role", None)
    if "price" in record:
        price: Decimal | None = record.pop("price")
        if price is None:
            record["price_in_cents"] = None
        else:
            # Exact: the default context's 28 digits would round a large budget's cents silently.
            exact = Context(prec=len(price.as_tuple().digits) + 10, Emax=_MAX_PRICE_EXPONENT + 10)
            cents = exact.multiply(price, record["currency_base_unit"])
            if cents != cents.to_integral_value():
                errors.append(_validation("price", "Price must not have fractions of a cent"))
            else:
                record["price_in_cents"] = int(cents)
    if "status_key" in record:
        record["status"] = status_of(record.pop("status_key"))
    _check_dates(record, "start_date", "due_date", errors)


RESOURCE = _Resource(
    collection="workspaces",
    singular="workspace",
    subject_type="Workspace",
    fields={
        "title": _Field(kind="string", required=True),
        "description": _Field(kind="text"),
        # mavenlink_gem's lib/config/specification.yml (workspaces): `creator_role` must be one of
        # maven, buyer on create, and the budget is written as `price` (`price_in_cents` is read only).
        "creator_role": _Field(kind="choice", choices=("maven", "buyer"), required=True, create_only=True),
        "budgeted": _Field(kind="bool"),
        "price": _Field(kind="money", minimum=0),
        "currency": _Field(kind="currency", create_only=True),
        "start_date": _Field(kind="date"),
        "due_date": _Field(kind="date"),
        "status_key": _Field(kind="status"),
        "primary_maven_id": _Field(kind="ref", target="users"),
        "archived": _Field(kind="bool"),
        "external_references_attributes": _Field(kind="nested"),
    },
    prepare=_prepare_workspace,
    filters={
        "search": _search("title"),
        "updated_after": _after("updated_at"),
    },
    orders=_TIMESTAMP_ORDERS | {"title", "start_date", "due_date"},
    associations={
        "participants": _Association(
            "users", "participant_ids", _has_many("participations", "workspace_id", "user_id")
        ),
        "participations": _Association(
            "participations", "participation_ids", _has_many("participations", "workspace_id")
        ),
        "stories": _Association("stories", "story_ids", _has_many("stories", "workspace_id")),
        "workspace_resources": _Association(
            "workspace_resources",
            "workspace_resource_ids",
            _has_many("workspace_resources", "workspace_id"),
        ),
        "external_references": _Association(
            "external_references", "external_reference_ids", _references_of("Workspace")
        ),
        "creator": _Association("users", None, _belongs_to("creator_id")),
        "primary_maven": _Association("users", None, _belongs_to("primary_maven_id")),
    },
    scope=_unarchived_scope,
    show_scoped=True,
)
