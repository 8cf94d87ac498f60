"""Roles (read only): ``/api/v1/roles``."""

from __future__ import annotations

from sandboxes.kantata.schema import _Resource, _search

__all__ = ["RESOURCE"]


RESOURCE = _Resource(
    collection="roles",
    singular="role",
    subject_type="Role",
    filters={"search": _search("name")},
    orders=frozenset({"id", "name"}),
)
