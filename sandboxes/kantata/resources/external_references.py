"""External references (a record's link to another system's record): ``/api/v1/external_references``,
and the nested ``external_references_attributes`` that workspace and story creates take.

Attributes as Kantata's Ruby client lists them (mavenlink_gem, ``lib/config/specification.yml``,
``external_references``): written ``service_name``, ``service_model``, ``service_model_ref``, ``subject_id``,
``subject_type``, ``status``, ``external_link``, ``external_message``, ``external_status``, ``locked`` (the
first five required); answered besides ``created_at``, ``updated_at``, ``last_synced_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sandboxes.kantata.data import Record
from sandboxes.kantata.schema import (
    _TIMESTAMP_ORDERS,
    _Association,
    _equals,
    _Errors,
    _Field,
    _ids_in,
    _one_of,
    _Resource,
)
from sandboxes.kantata.wire import _validation

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


_SUBJECT_COLLECTIONS: Mapping[str, str] = {
    "Workspace": "workspaces",
    "Story": "stories",
    "TimeEntry": "time_entries",
    "Expense": "expenses",
    "Invoice": "invoices",
    "BillingMilestone": "billing_milestones",
    "Participation": "participations",
    "User": "users",
}


def _prepare_external_reference(
    sandbox: KantataSandbox, record: Record, existing: Record | None, errors: _Errors
) -> None:
    if existing is None:
        for key in ("status", "external_status", "external_link", "external_message"):
            record.setdefault(key, None)
        record.setdefault("locked", False)
        record.setdefault("last_synced_at", None)
    subject_type, subject_id = record.get("subject_type"), record.get("subject_id")
    if subject_type is not None and subject_id is not None:
        collection = _SUBJECT_COLLECTIONS[subject_type]
        if subject_id not in sandbox.records[collection]:
            errors.append(_validation("subject_id", f"{subject_type} {subject_id} does not exist"))


_EXTERNAL_REFERENCE_FIELDS: Mapping[str, _Field] = {
    "subject_type": _Field(
        kind="choice", required=True, create_only=True, choices=tuple(_SUBJECT_COLLECTIONS)
    ),
    "subject_id": _Field(kind="id", required=True, create_only=True),
    "service_name": _Field(kind="string", required=True),
    "service_model": _Field(kind="string", required=True),
    "service_model_ref": _Field(kind="string", required=True),
    "status": _Field(kind="string"),
    "external_status": _Field(kind="string"),
    "external_link": _Field(kind="string", max_length=2048),
    "external_message": _Field(kind="text"),
    "locked": _Field(kind="bool"),
}
# The nested form names its subject implicitly: the record being created.
_NESTED_REFERENCE_FIELDS = {
    name: spec
    for name, spec in _EXTERNAL_REFERENCE_FIELDS.items()
    if name not in ("subject_type", "subject_id")
}


def _workspace_subject(_: KantataSandbox, record: Record) -> list[str]:
    return [record["subject_id"]] if record["subject_type"] == "Workspace" else []


RESOURCE = _Resource(
    collection="external_references",
    singular="external_reference",
    subject_type="ExternalReference",
    fields=_EXTERNAL_REFERENCE_FIELDS,
    prepare=_prepare_external_reference,
    filters={
        "subject_type": _one_of("subject_type"),
        "subject_id": _ids_in("subject_id"),
        "service_name": _equals("service_name"),
        "service_model": _equals("service_model"),
        "service_model_ref": _one_of("service_model_ref"),
    },
    orders=_TIMESTAMP_ORDERS,
    associations={"workspace": _Association("workspaces", None, _workspace_subject)},
)
