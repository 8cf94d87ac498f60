"""The envelope every adapter's opaque paging cursor travels in.

Each adapter decides what its cursor says (Salesforce: the last id, for keyset paging; Kantata: a page
number; NetSuite: an offset), always as short ASCII text. This module wraps that text as unpadded base64url
and unwraps it again, refusing anything this API could not have issued with ``InvalidCursor`` (a 422 to the
caller; a tier that relays its own caller's cursor here, like the experience tier, passes that 422 on, see
``apis/tier_client.py``). Cursors are not signed: they only select a page of a query the caller may run
anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from system_apis.crm.port import InvalidCursor

__all__ = ["fingerprint", "unwrap_cursor", "wrap_cursor"]

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
