"""Shared value types: money, currencies, ids and the per-system id record.

Money is always ``Decimal`` and travels as a JSON string ("1234.50"): msgspec encodes ``Decimal`` as a
string, and decoding reads the JSON text straight into a ``Decimal``, so no value passes through a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

__all__ = [
    "ISO_4217_CODES",
    "NON_NEGATIVE",
    "POSITIVE",
    "CurrencyCode",
    "CustomerId",
    "ExternalKey",
    "Hours",
    "LegalEntityCode",
    "Money",
    "MoneyAmount",
    "NonEmptyText",
    "NonNegativeMoneyAmount",
    "OpportunityId",
    "PageLimit",
    "PositiveMoneyAmount",
    "RecordId",
    "SystemIds",
    "is_iso_4217",
    "require_decimal",
]

CurrencyCode = Annotated[
    str,
    msgspec.Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 alphabetic currency code.", examples=["USD"]),
]
MoneyAmount = Annotated[
    Decimal,
    msgspec.Meta(description="A decimal amount, serialised as a JSON string.", examples=["125000.50"]),
]
LegalEntityCode = Annotated[
    str, msgspec.Meta(min_length=1, max_length=32, description="The firm's legal entity, e.g. US01.")
]
# Ids are opaque to callers; the bound keeps path parameters and bodies sane.
RecordId = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_:.-]+$", description="A record's id in its system."
    ),
]
CustomerId = RecordId
OpportunityId = RecordId
# A stable business key a write is made idempotent on in the vendor (external id, external reference).
ExternalKey = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=80,
        pattern=r"^[A-Za-z0-9_:.-]+$",
        description="Stable business key; the same key never creates a second record in the vendor.",
    ),
]
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=200)]
# msgspec cannot bound a Decimal itself; ``extra`` tells the contract the bound (apis.plugin renders it as
# the string pattern) and the inputs using these types check it in ``__post_init__`` (see require_decimal).
NON_NEGATIVE = {"decimal_minimum": "0"}
POSITIVE = {"decimal_minimum": "0", "decimal_exclusive": True}
PositiveMoneyAmount = Annotated[
    Decimal, msgspec.Meta(description="A decimal amount above zero, as a string.", extra=POSITIVE)
]
NonNegativeMoneyAmount = Annotated[
    Decimal, msgspec.Meta(description="A decimal amount of zero or more, as a string.", extra=NON_NEGATIVE)
]
Hours = Annotated[
    Decimal,
    msgspec.Meta(description='Hours (0 or more) as a decimal string, e.g. "7.50".', extra=NON_NEGATIVE),
]
# At least one visible character; spelled out so Python's and JSON Schema's regex engines agree.
NonEmptyText = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"[^\s\x00-\x1f\x7f-\x9f]")]


class Money(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """An amount in one currency."""

    amount: MoneyAmount
    currency: CurrencyCode

    def __post_init__(self) -> None:
        require_decimal("amount", self.amount)


class SystemIds(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """The ids one business object has in each system it lives in."""

    crm: str | None = None
    psa: str | None = None
    erp: str | None = None
    fpa: str | None = None


# Active ISO 4217 alphabetic codes (2025 list). Kept as data so a currency check never depends on the
# platform's locale tables.
ISO_4217_CODES: frozenset[str] = frozenset(
    (
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BOV",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHE",
        "CHF",
        "CHW",
        "CLF",
        "CLP",
        "CNY",
        "COP",
        "COU",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MXV",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "USN",
        "UYI",
        "UYU",
        "UYW",
        "UZS",
        "VED",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    )
)


# msgspec cannot bound a Decimal in its schema, so inputs with bounded decimals check them in
# ``__post_init__``; a ValueError there is a validation error (422) like any other.
def require_decimal(
    name: str, value: Decimal | None, *, minimum: Decimal | None = None, inclusive: bool = True
) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a plain decimal ("1234.50": not NaN, not
    infinite, no exponent, as the contract's pattern says) at or above ``minimum``."""
    if value is None:
        return
    exponent = value.as_tuple().exponent
    if not value.is_finite() or not isinstance(exponent, int) or exponent > 0:
        raise ValueError(f"`{name}` must be a plain decimal number such as 1234.50")
    if minimum is not None and (value < minimum or (not inclusive and value == minimum)):
        raise ValueError(f"`{name}` must be {'at least' if inclusive else 'above'} {minimum}")


def is_iso_4217(code: str | None) -> bool:
    """True when ``code`` is an active ISO 4217 currency."""
    return code is not None and code in ISO_4217_CODES
