"""What every list in a role view shares: its page and cursor, and the legal-entity and currency filters.

A view often orders what it composed itself (projects at risk first, the oldest receivable first), so its
pages are cut from that ordered list: the cursor carries the offset and a fingerprint of the listing (the
view and its filters), so it only continues the listing it came from. A cursor this tier did not issue is
the caller's mistake: 422 naming ``cursor``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from litestar.params import QueryParameter

from system_apis.crm.port import InvalidCursor
from system_apis.cursors import fingerprint, unwrap_cursor, wrap_cursor
from system_apis.params import Cursor, cursor_errors

__all__ = ["CurrencyFilter", "Cursor", "LegalEntityFilter", "Paging", "ViewLimit"]

T = TypeVar("T")

ViewLimit = Annotated[int, QueryParameter(ge=1, le=200, description="Items per page (at most 200).")]
LegalEntityFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[A-Za-z0-9_-]{1,32}$", description="Only this legal entity (e.g. `US01`).", required=False
    ),
]
CurrencyFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[A-Z]{3}$", description="Only amounts in this ISO 4217 currency.", required=False
    ),
]


@dataclass(frozen=True, slots=True)
class Paging:
    """The page of a listing a caller asked for. Made from the request (``Paging.of``) before the view reads
    anything, so a cursor this tier did not issue is a 422 at once; ``cut`` takes the page from the items,
    in the view's order, once they are in."""

    listing: str
    offset: int
    limit: int

    @classmethod
    def of(cls, listing: tuple[str, ...], *, limit: int, cursor: str | None) -> Paging:
        """``listing`` names the view and its filters: a cursor from another listing is refused."""
        name = fingerprint(*listing)
        offset = 0
        if cursor:
            with cursor_errors():
                text = unwrap_cursor(cursor, max_length=128)
                head, _, tail = text.partition("|")
                if head != name or not tail.isdigit():
                    raise InvalidCursor("cursor is for another listing")
                offset = int(tail)
        return cls(listing=name, offset=offset, limit=limit)

    def cut(self, items: Sequence[T]) -> tuple[list[T], str | None]:
        """This page of ``items``, and the cursor of the next (None on the last)."""
        page = list(items[self.offset : self.offset + self.limit])
        end = self.offset + len(page)
        return page, (wrap_cursor(f"{self.listing}|{end}") if end < len(items) else None)
