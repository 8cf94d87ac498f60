"""``projects`` (API v2.0 "project" resource): only the API's three properties (id, number, displayName)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandboxes.business_central.data import CompanySetup, Record
from sandboxes.business_central.entities import EntitySet, Writes, apply_body
from sandboxes.business_central.errors import FIELD_VALIDATION, BusinessCentralError

if TYPE_CHECKING:
    from sandboxes.business_central.sandbox import BusinessCentralSandbox

__all__ = ["PROJECTS", "WRITES"]

PROJECTS = EntitySet(
    name="projects",
    entity_type="project",
    fields={"id": "guid", "number": "code", "displayName": "text"},
    writable=frozenset({"number", "displayName"}),
    max_lengths={"number": 20, "displayName": 100},
    enums={},
    order=("number",),
    table="Job",
)


def create(sandbox: BusinessCentralSandbox, entity: Record, setup: CompanySetup, body: Any) -> None:
    entity.update({"number": "", "displayName": ""})
    apply_body(PROJECTS, entity, body)
    entity["number"] = entity["number"] or sandbox.next_number(PROJECTS, entity["companyId"], "PR", 5)


def update(
    sandbox: BusinessCentralSandbox, entity: Record, changed: Record, written: set[str], setup: CompanySetup
) -> None:
    if not changed["number"]:
        raise BusinessCentralError(400, FIELD_VALIDATION, "No. must have a value in Project.")
    sandbox.check_unique_number(PROJECTS, changed["companyId"], changed)


def delete(sandbox: BusinessCentralSandbox, entity: Record) -> None:
    return None


WRITES = Writes(create=create, update=update, delete=delete, stamped=False)
