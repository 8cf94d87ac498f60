"""The stored-records admin endpoint every sandbox serves, for end-to-end tests.

``GET {admin_prefix}/records/{record_type}`` answers 200 ``{"items": [...], "count": n}``: the records of
that type exactly as the sandbox holds them (not as its vendor API renders them), in storage order. Every
query parameter ``field=value`` keeps only the records whose top-level ``field`` equals ``value`` as text:
``str(record.get(field))``, so a missing field or null reads ``None``; ``true``/``false`` and ``null``
match JSON's spelling of booleans and null too. Several parameters must all match (a repeated parameter
with different values matches nothing). An unknown record type answers 404
``{"error": "unknown record type", "known": [...]}``; type names match exactly, or else ignoring case.

Like the other admin routes it needs no vendor auth and is never faulted, metered or logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from litestar import Response

__all__ = ["RECORDS_PATH", "filter_records", "records_response"]

RECORDS_PATH = "/records/{record_type:str}"
"""The route below a sandbox's admin prefix; the handler takes ``record_type`` from the path."""

_JSON = "application/json"


def _text_forms(value: Any) -> tuple[str, ...]:
    if value is None:
        return ("None", "null")
    if isinstance(value, bool):
        return (str(value), "true" if value else "false")
    return (str(value),)


def filter_records(
    records: Iterable[Mapping[str, Any]], params: Iterable[tuple[str, str]]
) -> list[Mapping[str, Any]]:
    """The records whose top-level fields equal every ``(field, value)`` pair, compared as text."""
    wanted = list(params)
    return [
        record
        for record in records
        if all(value in _text_forms(record.get(field)) for field, value in wanted)
    ]


def _resolve(known: Iterable[str], record_type: str) -> str | None:
    names = list(known)
    if record_type in names:
        return record_type
    folded = [name for name in names if name.lower() == record_type.lower()]
    return folded[0] if len(folded) == 1 else None


def records_response(
    stores: Mapping[str, Mapping[str, Mapping[str, Any]]],
    record_type: str,
    params: Iterable[tuple[str, str]],
) -> Response[bytes]:
    """The endpoint's answer for a sandbox whose state is ``{record type: {id: record}}``."""
    name = _resolve(stores, record_type)
    if name is None:
        body: dict[str, Any] = {"error": "unknown record type", "known": list(stores)}
        return Response(msgspec.json.encode(body), status_code=404, media_type=_JSON)
    items = filter_records(stores[name].values(), params)
    return Response(msgspec.json.encode({"items": items, "count": len(items)}), media_type=_JSON)
