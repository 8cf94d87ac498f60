"""Participations (a user's membership of a workspace): ``/api/v1/participations``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandboxes.kantata.data import Record
from sandboxes.kantata.schema import (
    _TIMESTAMP_ORDERS,
    _Association,
    _belongs_to,
    _Deletion,
    _Errors,
    _Field,
    _ids_in,
    _Resource,
)
from sandboxes.kantata.wire import _validation

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


def _prepare_participation(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    record.setdefault("role", "maven")
    if existing is None and any(
        other["workspace_id"] == record.get("workspace_id") and other["user_id"] == record.get("user_id")
        for other in sandbox.records["participations"].values()
    ):
        errors.append(_validation("user_id", "User has already been added to this workspace"))


RESOURCE = _Resource(
    collection="participations",
    singular="participation",
    subject_type="Participation",
    fields={
        "workspace_id": _Field(kind="ref", target="workspaces", required=True, create_only=True),
        "user_id": _Field(kind="ref", target="users", required=True, create_only=True),
        "role": _Field(kind="choice", choices=("maven", "buyer")),
    },
    prepare=_prepare_participation,
    filters={"workspace_id": _ids_in("workspace_id"), "user_id": _ids_in("user_id")},
    orders=_TIMESTAMP_ORDERS,
    associations={
        "workspace": _Association("workspaces", None, _belongs_to("workspace_id")),
        "user": _Association("users", None, _belongs_to("user_id")),
    },
    # Kantata's "Deleting an existing Participation" removes the participant from the project (the "associated
    # project data" it also deletes is not modelled).
    deletion=_Deletion(),
)
