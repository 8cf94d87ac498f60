"""Parameters every system route shares: record ids, paging, change windows, and created-or-found answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
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
    "created_or_found",
    "cursor_errors",
    "customers_by_id",
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


async def customers_by_id(
    ids: str,
    read: Callable[[list[str]], Awaitable[CustomerPage]],
    *,
    cursor: str | None,
    modified_since: str | None,
    what: str,
) -> CustomerPage:
    """A customer listing's ``id=a,b,...`` (a view's page of customers in one call rather than one read
    each): the ones ``read`` finds, in one answer with no next page (so no ``cursor``), narrowed to those
    changed at or after ``modified_since`` as the listing narrows; one whose system keeps no change time
    stays (seen, at worst, twice rather than missed)."""
    if cursor is not None:
        raise ProblemError(
            "validation-failed",
            f"`id` reads those {what} in one answer, which has no next page: no cursor with it.",
            errors=[FieldError(location="query", field="cursor", message="not with id")],
        )
    moment = since(modified_since)
    page = await read(list(dict.fromkeys(ids.split(","))))
    if moment is None:
        return page
    return msgspec.structs.replace(
        page, items=[c for c in page.items if c.updated_at is None or c.updated_at >= moment]
    )
