"""The envelope every adapter's opaque paging cursor travels in.

Each adapter decides what its cursor says (Salesforce: the last id, for keyset paging; Kantata: a page
number; NetSuite: an offset), always as short ASCII text. This module wraps that text as unpadded base64url
and unwraps it again, refusing anything this API could not have issued with ``InvalidCursor`` (a 422 to the
caller; a tier that relays its own caller's cursor here, like the experience tier, passes that 422 on, see
``apis/tier_client.py``). Cursors are not signed: they only select a page of a query the caller may run
anyway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from system_apis.crm.port import InvalidCursor

__all__ = ["fingerprint", "merged_next", "merged_page", "merged_position", "unwrap_cursor", "wrap_cursor"]

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def wrap_cursor(text: str) -> str:
    """``text`` (ASCII) as an opaque cursor."""
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def unwrap_cursor(cursor: str, *, max_length: int) -> str:
    """The text inside a cursor; ``InvalidCursor`` unless it is base64url of ASCII within ``max_length``."""
    if not cursor or len(cursor) > max_length or not _BASE64URL.fullmatch(cursor):
        raise InvalidCursor("cursor is not one this API produced")
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise InvalidCursor("cursor is not one this API produced") from None


def fingerprint(*parts: str) -> str:
    """A short digest naming one listing (resource and filters), so a cursor only continues its own query."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


# -- one cursor over several systems (a port routed per legal entity: the ERPs', the PSAs') ----------------


class _Page(Protocol):
    @property
    def items(self) -> Sequence[Any]: ...

    @property
    def skipped(self) -> Sequence[Any]: ...

    @property
    def next_cursor(self) -> str | None: ...


_P = TypeVar("_P", bound=_Page)


def merged_position(cursor: str | None, count: int) -> tuple[int, str | None]:
    """(which of ``count`` systems, that system's own cursor) from a merged listing's cursor."""
    if cursor is None:
        return 0, None
    text = unwrap_cursor(cursor, max_length=512)
    index_text, separator, inner = text.partition("|")
    if not separator or not index_text.isdigit() or int(index_text) >= count:
        raise InvalidCursor("cursor is not one this API produced")
    return int(index_text), inner or None


def merged_next(index: int, inner: str | None, count: int) -> str | None:
    """The merged cursor after a page of system ``index`` whose own next cursor is ``inner``: that system's
    next page, else the next system's first, else the end."""
    if inner is not None:
        return wrap_cursor(f"{index}|{inner}")
    if index + 1 < count:
        return wrap_cursor(f"{index + 1}|")
    return None


async def merged_page(
    count: int, cursor: str | None, limit: int, read: Callable[[int, str | None], Awaitable[_P]]
) -> tuple[list[Any], list[Any], str | None]:
    """(items, skipped, next cursor) of one page of a listing that walks ``count`` systems in turn;
    ``read(index, own cursor)`` reads one system's page (each with the whole ``limit``, so its own cursors
    stay its own).

    At the start of a system's listing, the next systems' first pages are read at once with it: where its
    listing ends on this page and theirs fit in what is left of it, the page goes on with them (a system's
    listing never split: each is whole or not there), so "every record" of a few systems is one round of
    calls, not one system after another. A read ahead that does not fit, or fails, is dropped: the cursor
    then points at that system's start, and reading it there answers (or fails) as before."""
    index, inner = merged_position(cursor, count)
    ahead = (
        [asyncio.ensure_future(read(later, None)) for later in range(index + 1, count)]
        if inner is None
        else []
    )
    try:
        page = await read(index, inner)
        items, skipped, at, after = list(page.items), list(page.skipped), index, page.next_cursor
        for later, reading in enumerate(ahead, start=index + 1):
            if after is not None:
                break
            try:
                more = await reading
            except Exception:  # only read ahead: the next page reads that system again
                break
            if len(items) + len(more.items) > limit:
                break
            items += more.items
            skipped += more.skipped
            at, after = later, more.next_cursor
        return items, skipped, merged_next(at, after, count)
    finally:
        for reading in ahead:
            if not reading.done():
                reading.cancel()
            elif not reading.cancelled():
                reading.exception()  # retrieved: a dropped read ahead's failure is not an unhandled one
