"""Following what a vendor hands back: next-page links, task links, ids that become path segments.

A vendor answer is data, not a destination. ``VendorHttpClient`` already refuses another origin; these
checks also keep a link on the configured path (``/services/data/v61.0/query/``, not the org's other
APIs), which a plain prefix test on the raw string does not: httpx removes ``..`` segments when it
joins a URL, and a vendor's front end may decode ``%2e%2e`` or ``%2f`` and remove them there.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import httpx

__all__ = ["followable_link", "path_segment"]

_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:/|$)")
# Percent-encoded "/", "\", "." or "%": harmless to httpx, but a server or proxy may decode them into a path.
_ENCODED_SEPARATOR = re.compile(r"%(?:2f|5c|2e|25)", re.IGNORECASE)
_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,128}")


def followable_link(base: httpx.URL, link: str, under: str) -> httpx.URL:
    """``link`` as an absolute URL on ``base``'s origin whose path is under ``under`` (a path that ends
    with ``/``); ``ValueError`` when it is anything else. ``link`` may be absolute or host-relative."""
    if not under.endswith("/"):
        raise ValueError("the prefix must end with '/'")
    if "\\" in link or any(ord(char) < 0x20 or ord(char) == 0x7F for char in link):
        raise ValueError("control character or backslash in a vendor link")
    # The path as the vendor wrote it: httpx removes dot segments from an absolute URL when it parses it.
    written = urlsplit(link)
    if written.fragment or _ENCODED_SEPARATOR.search(written.path):
        raise ValueError("vendor link with a fragment or an encoded separator")
    if any(_DOT_SEGMENT.search(path) or "//" in path for path in (written.path, unquote(written.path))):
        raise ValueError("vendor link with a dot segment")
    try:
        url = httpx.URL(link)
    except httpx.InvalidURL as exc:
        raise ValueError(f"unusable vendor link: {exc}") from None
    if url.is_absolute_url:
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise ValueError("vendor link to another origin")
    elif not link.startswith("/") or link.startswith("//") or url.host:
        raise ValueError("vendor link is neither absolute nor host-relative")
    else:
        url = base.copy_with(raw_path=url.raw_path)
    if not unquote(url.raw_path.split(b"?", 1)[0].decode("ascii")).startswith(under):
        raise ValueError("vendor link outside the configured path")
    return url


def path_segment(value: str | int) -> str:
    """A vendor's id made safe to put in a path: letters, digits, ``_`` and ``-`` only."""
    text = str(value)
    if not _SEGMENT.fullmatch(text):
        raise ValueError("vendor id is not a plain path segment")
    return text
