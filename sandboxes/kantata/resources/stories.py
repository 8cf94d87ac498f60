"""Stories (tasks, milestones, deliverables, issues): ``/api/v1/stories``; a DELETE only soft-deletes one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sandboxes.kantata.data import Record
from sandboxes.kantata.schema import (
    _TIMESTAMP_ORDERS,
    _after,
    _Association,
    _belongs_to,
    _check_dates,
    _Deletion,
    _Errors,
    _Field,
    _flag,
    _has_many,
    _ids_in,
    _one_of,
    _parse_bool,
    _Predicate,
    _references_of,
    _Resource,
    _search,
)
from sandboxes.kantata.wire import _validation

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


def _undeleted_scope(sandbox: KantataSandbox, params: Mapping[str, str]) -> _Predicate | None:
    # Kantata's "Deleting an existing Story": soft deleted tasks are listed with `only_deleted=true`;
    # mavenlink_gem's Story loads associations with `show_deleted: true` (both, and deleted ones, then).
    if "only_deleted" in params and _parse_bool("only_deleted", params["only_deleted"]):
        return lambda record: record.get("deleted_at") is not None
    if "show_deleted" in params and _parse_bool("show_deleted", params["show_deleted"]):
        return None
    return lambda record: record.get("deleted_at") is None


def _prepare_story(sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors) -> None:
    if existing is None:
        defaults: Record = {
            "description": None,
            "story_type": "task",
            "state": "not started",
            "start_date": None,
            "due_date": None,
            "budget_estimate_in_cents": None,
            "percentage_complete": 0,
            "parent_id": None,
            "archived": False,
        }
        for key, value in defaults.items():
            record.setdefault(key, value)
    parent_id = record.get("parent_id")
    if parent_id is not None:
        parent = sandbox.records["stories"].get(parent_id)
        misplaced = parent is None or parent["workspace_id"] != record.get("workspace_id")
        if misplaced or parent_id == record.get("id"):
            errors.append(_validation("parent_id", "Parent must be a story in the same workspace"))
    _check_dates(record, "start_date", "due_date", errors)


RESOURCE = _Resource(
    collection="stories",
    singular="story",
    subject_type="Story",
    fields={
        "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
        "title": _Field(kind="string", required=True),
        "description": _Field(kind="text"),
        "story_type": _Field(kind="choice", choices=("task", "milestone", "deliverable", "issue")),
        "state": _Field(kind="choice", choices=("not started", "started", "completed")),
        "start_date": _Field(kind="date"),
        "due_date": _Field(kind="date"),
        "budget_estimate_in_cents": _Field(kind="int", minimum=0),
        "percentage_complete": _Field(kind="int", minimum=0, maximum=100),
        "parent_id": _Field(kind="ref", target="stories"),
        "archived": _Field(kind="bool"),
        # Whether the task is billable, and whether it is fixed fee (mavenlink_gem specification, stories).
        # A story is never on an invoice itself: an invoice bills billing milestones
        # (`sandboxes.kantata.resources.billing_milestones`), which may name a story. Absent unless written.
        "billable": _Field(kind="bool"),
        "fixed_fee": _Field(kind="bool"),
        "external_references_attributes": _Field(kind="nested"),
    },
    prepare=_prepare_story,
    filters={
        "workspace_id": _ids_in("workspace_id"),
        "story_type": _one_of("story_type"),
        "parent_id": _ids_in("parent_id"),
        "search": _search("title"),
        "updated_after": _after("updated_at"),
        "billable": _flag("billable"),
        "state": _one_of("state"),
    },
    orders=_TIMESTAMP_ORDERS | {"title", "start_date", "due_date"},
    associations={
        "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
        "parent": _Association("stories", None, _belongs_to("parent_id")),
        "sub_stories": _Association("stories", "sub_story_ids", _has_many("stories", "parent_id")),
        "external_references": _Association(
            "external_references", "external_reference_ids", _references_of("Story")
        ),
    },
    scope=_undeleted_scope,
    show_scoped=True,
    deletion=_Deletion(soft=True),
)
