"""Invoices (read only): ``/api/v1/invoices``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandboxes.kantata.data import Record
from sandboxes.kantata.schema import (
    _TIMESTAMP_ORDERS,
    _after,
    _Association,
    _belongs_to,
    _contains,
    _flag,
    _one_of,
    _Resource,
)

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


def _invoice_workspaces(_: KantataSandbox, record: Record) -> list[str]:
    return list(record["workspace_ids"])


RESOURCE = _Resource(
    collection="invoices",
    singular="invoice",
    subject_type="Invoice",
    filters={
        "workspace_id": _contains("workspace_ids"),
        "status": _one_of("status"),
        "draft": _flag("draft"),
        "updated_after": _after("updated_at"),
    },
    orders=_TIMESTAMP_ORDERS | {"invoice_date", "due_date"},
    associations={
        "workspaces": _Association("workspaces", None, _invoice_workspaces),
        "user": _Association("users", None, _belongs_to("user_id")),
    },
)
