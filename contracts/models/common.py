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
    "CurrencyCode",
    "CustomerId",
    "LegalEntityCode",
    "Money",
    "MoneyAmount",
    "OpportunityId",
    "PageLimit",
    "SystemIds",
    "is_iso_4217",
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
CustomerId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
OpportunityId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=200)]


class Money(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """An amount in one currency."""

    amount: MoneyAmount
    currency: CurrencyCode


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
        "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
        "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
        "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE",
        "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
        "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR",
        "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD",
        "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
        "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
        "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON",
        "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
        "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD",
        "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV",
        "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
    )
)


def is_iso_4217(code: str | None) -> bool:
    """True when ``code`` is an active ISO 4217 currency."""
    return code is not None and code in ISO_4217_CODES
