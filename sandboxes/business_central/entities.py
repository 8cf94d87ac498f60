"""An API page as the sandbox serves it (`EntitySet`) and the rules every page applies to a body: types,
lengths, enums, read-only properties. Each resource's own rules live in its module (`customers`...)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sandboxes.business_central.data import CompanySetup, Record
from sandboxes.business_central.errors import STRING_TOO_LONG, BusinessCentralError, bad_request
from sandboxes.business_central.odata import FieldKind, edm_type

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandboxes.business_central.sandbox import BusinessCentralSandbox

__all__ = ["EntitySet", "Writes", "apply_body", "cents", "coerce", "copy_record", "decimals_back"]


_DECIMAL_LIMIT = Decimal("999999999999999.99")
_CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    """An amount rounded as Business Central rounds amounts: AL ``Round(value, 0.01)``, whose default
    direction '=' is to the nearest, a half going up (learn.microsoft.com, "Round method"); Python's
    default would round a half to even."""
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def copy_record(record: Record) -> Record:
    return {
        key: [dict(line) for line in value] if isinstance(value, list) else value
        for key, value in record.items()
    }


@dataclass(frozen=True, slots=True)
class EntitySet:
    """One API page as the sandbox serves it: its properties (in the order they are rendered) and rules."""

    name: str
    entity_type: str
    fields: Mapping[str, FieldKind]
    writable: frozenset[str]
    max_lengths: Mapping[str, int]
    enums: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]
    """The default order of a list (Business Central sorts by the page's key)."""
    table: str
    navigation: tuple[str, ...] = ()
    """Contained entity sets (``salesInvoiceLines``): ``$expand``-able, deep-inserted, in ``$metadata``."""


@dataclass(frozen=True, slots=True)
class Writes:
    """How a writable resource takes ``POST``, ``PATCH`` and ``DELETE`` (read-only sets have none)."""

    create: Callable[[BusinessCentralSandbox, Record, CompanySetup, Any], None]
    """Fill a new entity (``id`` and ``companyId`` set) from the body, or refuse it."""
    update: Callable[[BusinessCentralSandbox, Record, Record, set[str], CompanySetup], None]
    """Check and complete ``changed``: a copy of the entity with the body's ``written`` properties."""
    delete: Callable[[BusinessCentralSandbox, Record], None]
    """Refuse a delete, or undo what the entity did to others (a payment's application)."""
    stamped: bool = True
    """Whether the entity has ``lastModifiedDateTime`` (``projects`` has only three properties)."""


def decimals_back(entity_set: EntitySet, entity: Record) -> None:
    for name, kind in entity_set.fields.items():
        if kind == "decimal" and isinstance(entity.get(name), str):
            entity[name] = Decimal(entity[name])


def coerce(entity_set: EntitySet, name: str, value: Any) -> Any:
    """A body value as stored, or a 400 as Business Central answers a value it cannot take."""
    kind = entity_set.fields[name]
    bad = BusinessCentralError(
        400,
        "BadRequest",
        f"Cannot convert the literal '{value}' to the expected type '{edm_type(kind)}'.",
    )
    if kind in ("text", "code", "enum"):
        if not isinstance(value, str):
            raise bad
        limit = entity_set.max_lengths.get(name)
        if limit is not None and len(value) > limit:
            raise BusinessCentralError(
                400,
                STRING_TOO_LONG,
                f"The length of the string is {len(value)}, but it must be less than or equal to {limit} "
                f"characters. Value: {value}",
            )
        if kind == "enum":
            allowed = entity_set.enums.get(name, ())
            spelled = "_x0020_" if value == " " else value
            if spelled not in allowed:
                raise BusinessCentralError(
                    400, "BadRequest", f"The value '{value}' is not valid for the enum property '{name}'."
                )
            return spelled
        return value.upper() if kind == "code" else value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise bad
        return value
    if kind in ("decimal", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise bad
        if kind == "integer":
            if not isinstance(value, int):
                raise bad
            return value
        number = Decimal(value)
        if abs(number) > _DECIMAL_LIMIT:
            # AL's Decimal holds +/- 999,999,999,999,999.99 (learn.microsoft.com, "Decimal Data Type");
            # a field cannot be assigned more. The error code and wording are unverified.
            message = f"The value {value} of the property '{name}' is outside the valid range."
            raise BusinessCentralError(400, "BadRequest", message)
        return number
    if kind == "date":
        if not isinstance(value, str) or len(value) != 10:
            raise bad
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise bad from None
    if kind == "guid":
        if not isinstance(value, str):
            raise bad
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise bad from None
    raise bad


def apply_body(entity_set: EntitySet, entity: Record, body: Any) -> set[str]:
    """Write a JSON body's properties onto `entity` (a copy); returns the names written."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    written: set[str] = set()
    for name, value in body.items():
        if name.startswith("@odata."):
            continue  # annotations a client echoes back (the etag) are not properties
        if name in entity_set.navigation:
            continue  # deep insert: handled by the resource
        if name not in entity_set.fields:
            raise bad_request(
                f"The property '{name}' does not exist on type 'Microsoft.NAV.{entity_set.entity_type}'. "
                "Make sure to only use property names that are defined by the type."
            )
        if name not in entity_set.writable:
            # Unverified: Business Central's wording for a read-only property.
            raise bad_request(f"The property '{name}' is read-only and cannot be modified.")
        entity[name] = coerce(entity_set, name, value)
        written.add(name)
    return written
