"""Users (read only): ``/api/v1/users``; ``GET /api/v1/users/me`` is the token's user."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandboxes.kantata.data import ADMIN_USER_ID
from sandboxes.kantata.schema import _id_list, _Predicate, _Resource, _search

if TYPE_CHECKING:
    from sandboxes.kantata.account import KantataSandbox

__all__ = ["RESOURCE"]


def _participant_in(sandbox: KantataSandbox, param: str, value: str) -> _Predicate:
    workspaces = _id_list(param, value)
    users = {
        participation["user_id"]
        for participation in sandbox.records["participations"].values()
        if participation["workspace_id"] in workspaces
    }
    return lambda record: record["id"] in users


RESOURCE = _Resource(
    collection="users",
    singular="user",
    subject_type="User",
    filters={"participant_in": _participant_in, "search": _search("full_name", "email_address")},
    orders=frozenset({"id", "full_name"}),
    aliases={"me": ADMIN_USER_ID},  # every sandbox token is the account administrator's
)
