"""Parameters every system route shares: record ids, paging, change windows, and created-or-found answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import msgspec
from litestar import Response
from litestar.params import PathParameter, QueryParameter

from apis.problems import FieldError, ProblemError
from contracts.models import CustomerPage
from system_apis.crm.port import InvalidCursor

__all__ = [
    "Cursor",
    "Limit",
    "ModifiedSince",
    "RecordIdPath",
    "changed_since",
    "created_or_found",
    "cursor_errors",
]

RecordIdPath = PathParameter(
    pattern=r"^[A-Za-z0-9_:.-]{1,64}$", description="The record's id in the system that holds it."
)
Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size (at most 200).")]
Cursor = Annotated[
    str | None, QueryParameter(max_length=512, description="`next_cursor` of the previous page (opaque).")
]
# A string, not a datetime parameter: Litestar would also take "0.5" (a Unix time) or a time with no offset,
# and a change window without a time zone is ambiguous. Parsed as RFC 3339 by msgspec in ``since``.
ModifiedSince = Annotated[
    str | None,
    QueryParameter(
        format="date-time",
        max_length=64,
        description="Only records changed at or after this RFC 3339 time, with its offset "
        "(e.g. 2026-11-01T00:00:00Z).",
    ),
]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def since(value: str | None) -> dt.datetime | None:
    """The ``modified_since`` parameter as an aware datetime; 422 unless it is an RFC 3339 date-time."""
    if value is None:
        return None
    try:
        moment = msgspec.json.decode(msgspec.json.encode(value), type=dt.datetime)
    except msgspec.ValidationError:
        moment = None
    if moment is not None and moment.tzinfo is not None:
        # Nothing changed before 1970: an earlier bound means "everything" (vendors reject such years).
        return max(moment, _EPOCH)
    raise ProblemError(
        "validation-failed",
        "modified_since is not a real date and time.",
        errors=[FieldError(location="query", field="modified_since", message="not an RFC 3339 date-time")],
    ) from None


@contextmanager
def cursor_errors() -> Iterator[None]:
    """A cursor we did not issue is the caller's mistake: 422 naming the parameter."""
    try:
        yield
    except InvalidCursor:
        raise ProblemError(
            "validation-failed",
            "The cursor is not one this API issued.",
            errors=[FieldError(location="query", field="cursor", message="unknown or corrupted cursor")],
        ) from None


def created_or_found(body: Any, created: bool, location: str) -> Response[Any]:
    """201 with Location when this call created the record; 200 when the business key already had one."""
    if created:
        return Response(body, status_code=201, headers={"Location": location})
    return Response(body, status_code=200)


def changed_since(page: CustomerPage, moment: dt.datetime | None) -> CustomerPage:
    """A read by id narrowed to the customers changed at or after ``moment`` (None: all of them), as the
    listing's ``modified_since`` narrows it. One whose system keeps no change time stays (seen, at worst,
    twice rather than missed)."""
    if moment is None:
        return page
    return msgspec.structs.replace(
        page, items=[c for c in page.items if c.updated_at is None or c.updated_at >= moment]
    )
