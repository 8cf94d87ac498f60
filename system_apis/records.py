"""Vendor records to canonical objects, one record at a time, for every adapter.

A vendor record Stratum cannot map (an amount beyond what the contract allows, a date that is none, a
missing field) must not take a whole list down for every reader. ``map_page`` maps a page record by record:
a record that fails is left out, named in the page's ``skipped`` list (``SkippedRecord``), logged as
``vendor_record_unmappable`` and counted in ``stratum_vendor_records_unmappable_total``; the rest is served.
``map_record`` maps the one record a read by id asked for: when it fails the read answers 502
(``VendorBadResponse``) naming the record, never 500.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec
import structlog
from prometheus_client import Counter

from contracts.models.common import SkippedRecord
from system_apis.errors import VendorBadResponse

__all__ = ["UNMAPPABLE_RECORDS", "map_page", "map_record", "unmappable_reason"]

R = TypeVar("R")
T = TypeVar("T")

UNMAPPABLE_RECORDS = Counter(
    "stratum_vendor_records_unmappable_total",
    "Vendor records left out of a list because they cannot be mapped to the canonical contract.",
    ["vendor", "record_type"],
)

# What a mapping function raises for a record it cannot map: ValueError from the canonical types' checks and
# the mappers' own, ArithmeticError (decimal.InvalidOperation) from an amount too large to quantize,
# msgspec.ValidationError from a conversion. Anything else is a bug and stays one.
_UNMAPPABLE: tuple[type[Exception], ...] = (ValueError, ArithmeticError, msgspec.ValidationError)


def _log() -> Any:
    return structlog.get_logger(__name__)


def unmappable_reason(exc: Exception) -> str:
    """A short, caller-safe reason (vendor values, never credentials, are in these messages)."""
    if isinstance(exc, ArithmeticError) and not str(exc).strip("[]<>'"):
        return "an amount is not a usable number"
    if isinstance(exc, ArithmeticError) and str(exc).startswith("[<class"):
        return "an amount is too large to be a usable number"
    return str(exc)[:200] or type(exc).__name__


def map_page(
    vendor: str,
    record_type: str,
    records: Iterable[R],
    to_canonical: Callable[[R], T],
    *,
    record_id: Callable[[R], object],
) -> tuple[list[T], list[SkippedRecord]]:
    """``records`` mapped one by one; those that cannot be mapped are left out and returned as skipped."""
    items: list[T] = []
    skipped: list[SkippedRecord] = []
    for record in records:
        try:
            items.append(to_canonical(record))
        except _UNMAPPABLE as exc:
            identifier = str(record_id(record))
            reason = unmappable_reason(exc)
            skipped.append(SkippedRecord(id=identifier, reason=reason))
            UNMAPPABLE_RECORDS.labels(vendor=vendor, record_type=record_type).inc()
            _log().warning(
                "vendor_record_unmappable",
                vendor=vendor,
                record_type=record_type,
                record_id=identifier,
                reason=reason,
            )
    return items, skipped


def map_record(vendor: str, record_type: str, record_id: object, to_canonical: Callable[[], T]) -> T:
    """``to_canonical()`` for the one record a read asked for; ``VendorBadResponse`` naming it when it
    cannot be mapped."""
    try:
        return to_canonical()
    except _UNMAPPABLE as exc:
        reason = unmappable_reason(exc)
        _log().warning(
            "vendor_record_unmappable",
            vendor=vendor,
            record_type=record_type,
            record_id=str(record_id),
            reason=reason,
        )
        raise VendorBadResponse(
            vendor,
            f"{vendor} {record_type} {record_id} cannot be mapped: {reason}",
            record_id=str(record_id),
        ) from None
