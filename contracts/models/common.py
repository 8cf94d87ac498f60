"""Shared value types: money, currencies, ids and the per-system id record.

Money is always ``Decimal`` and travels as a JSON string ("1234.50"): msgspec encodes ``Decimal`` as a
string, and decoding reads the JSON text straight into a ``Decimal``, so no value passes through a float.
A JSON number where the contract says a decimal string is refused (``decimal_text_errors``).

Every decimal a caller sends is bounded by what every vendor of its domain can store (``DecimalBound``):
the bound lives in the type's ``msgspec.Meta(extra=...)``, the contract renders it as the string's pattern
and maximum length (``apis.plugin.DecimalAsString``) and the inputs check the same bound, so the contract
and validation agree. The vendors' limits (the smallest of a domain's vendors wins):

- Salesforce currency fields are currency(18,2): 16 integer digits, 2 decimals; a value beyond is refused
  with 400 ``NUMBER_OUTSIDE_VALID_RANGE``.
- Business Central's AL Decimal holds -999,999,999,999,999.99 to +999,999,999,999,999.99 (15 integer
  digits; learn.microsoft.com, "Decimal Data Type").
- NetSuite currency fields hold at most 15 integer digits (docs.oracle.com, "Field Type Descriptions for
  Custom Fields") and currencies have a precision of 0 or 2 decimals ("Currency Decimal Precision").
- Kantata keeps money in integer minor units (``price_in_cents``, ``budget_estimate_in_cents``), declared
  ``integer``/``int32`` in Kantata's published OpenAPI specification: at most 2,147,483,647 cents. That
  Kantata's server refuses more is unverified; ``PSA_MONEY_MAX`` is the one place to widen it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

import msgspec

__all__ = [
    "ERP_MONEY_MAX",
    "ISO_4217_CODES",
    "MONEY_BOUND",
    "MONEY_DECIMAL_PLACES",
    "NON_NEGATIVE",
    "NON_NEGATIVE_ERP_MONEY",
    "POSITIVE",
    "POSITIVE_ERP_MONEY",
    "PROJECT_MONEY",
    "PSA_MONEY_MAX",
    "REPORTED_MONEY_INTEGER_DIGITS",
    "SIGNED_ERP_MONEY",
    "CurrencyCode",
    "CustomerId",
    "DecimalBound",
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
    "ProjectMoney",
    "ProjectMoneyAmount",
    "RecordId",
    "SignedMoneyAmount",
    "SkippedRecord",
    "SystemIds",
    "decimal_bound",
    "decimal_text_errors",
    "is_iso_4217",
    "minor_unit",
    "money_as_kept",
    "require_decimal",
    "round_money",
]

CurrencyCode = Annotated[
    str,
    msgspec.Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 alphabetic currency code.", examples=["USD"]),
]

# --- decimal bounds ------------------------------------------------------------------------------------

# Money a caller sends has at most 2 decimal places: Salesforce currency fields keep 2, NetSuite currencies
# have 0 or 2, and Kantata stores cents, so a third decimal (even for a 3-decimal currency such as KWD)
# is refused here rather than rounded away by one vendor and refused by another.
MONEY_DECIMAL_PLACES = 2
# The most an ERP amount may be: Business Central's AL Decimal range and NetSuite's 15-digit currency fields.
ERP_MONEY_MAX = Decimal("999999999999999.99")
# The most a project amount may be (budget, milestone): Kantata's 32-bit cents (2,147,483,647), smaller than
# any ERP's limit, and a project is created in the PSA and the ERP alike. Unverified: see the module doc.
PSA_MONEY_MAX = Decimal("21474836.47")
# Amounts Stratum reports have at most this many integer digits: more than any vendor stores (Salesforce's
# 16), with room for the totals of a page of such amounts (the experience tier's), and few enough that
# those sums stay exact in Decimal's 28-digit context. A vendor record beyond it is reported as unmappable.
REPORTED_MONEY_INTEGER_DIGITS = 20


@dataclasses.dataclass(frozen=True, slots=True)
class DecimalBound:
    """What a decimal field accepts: its sign, its largest value and its decimal places.

    ``pattern`` is the exact set of strings the bound accepts (plain decimals, no exponent, no leading
    zeros), so the contract's pattern and the server's check agree on every string."""

    minimum: str | None = None  # "0" or None (any sign)
    exclusive: bool = False  # with minimum "0": above zero
    integer_digits: int = REPORTED_MONEY_INTEGER_DIGITS
    places: int | None = None  # None: any number of decimal places
    maximum: Decimal | None = None  # the largest absolute value, when not all nines

    def as_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"decimal_integer_digits": self.integer_digits}
        if self.minimum is not None:
            extra["decimal_minimum"] = self.minimum
            if self.exclusive:
                extra["decimal_exclusive"] = True
        if self.places is not None:
            extra["decimal_places"] = self.places
        if self.maximum is not None:
            extra["decimal_maximum"] = str(self.maximum)
        return extra

    @property
    def max_length(self) -> int | None:
        if self.places is None:
            return None
        sign = 1 if self.minimum is None else 0
        return sign + self.integer_digits + (1 + self.places if self.places else 0)

    @property
    def pattern(self) -> str:
        return _pattern_for(self)

    def describe(self) -> str:
        largest = (
            self.maximum
            if self.maximum is not None
            else Decimal(10) ** self.integer_digits
            - (Decimal(1).scaleb(-self.places) if self.places else Decimal(1))
        )
        places = "" if self.places is None else f", at most {self.places} decimal places"
        if self.places is None and self.maximum is None:
            size = f"at most {self.integer_digits} digits before the decimal point"
        else:
            size = f"at most {largest:,}"
        sign = "" if self.minimum is None else (" above 0" if self.exclusive else " of 0 or more")
        return f"a decimal string{sign}, {size}{places}"

    def problem(self, value: Decimal) -> str | None:
        """Why ``value`` is outside the bound, or ``None`` when it is inside."""
        exponent = value.as_tuple().exponent
        if not value.is_finite() or not isinstance(exponent, int) or exponent > 0:
            return "must be a plain decimal number such as 1234.50"
        if self.minimum is not None and (value < 0 or (self.exclusive and value == 0)):
            return "must be above 0" if self.exclusive else "must be at least 0"
        if self.places is not None and -exponent > self.places:
            return f"has more than {self.places} decimal places"
        too_large = self.maximum is not None and abs(value) > self.maximum
        if value.adjusted() >= self.integer_digits or too_large:
            return f"is too large: {self.describe()}"
        return None


def decimal_bound(extra: dict[str, Any] | None) -> DecimalBound:
    """The bound a ``msgspec.Meta(extra=...)`` declares (the unbounded default for a plain ``Decimal``)."""
    extra = extra or {}
    maximum = extra.get("decimal_maximum")
    return DecimalBound(
        minimum=extra.get("decimal_minimum"),
        exclusive=bool(extra.get("decimal_exclusive")),
        integer_digits=int(extra.get("decimal_integer_digits", REPORTED_MONEY_INTEGER_DIGITS)),
        places=extra.get("decimal_places"),
        maximum=Decimal(maximum) if maximum is not None else None,
    )


@functools.lru_cache(maxsize=64)
def _pattern_for(bound: DecimalBound) -> str:
    # [0-9], not \d: Python's \d also matches other scripts' digits, ECMA 262's (the contract's) does not.
    k, places = bound.integer_digits, bound.places
    fraction = r"(\.[0-9]+)?" if places is None else (rf"(\.[0-9]{{1,{places}}})?" if places else "")
    if bound.exclusive:
        # Above zero: a non-zero integer part, or "0" with a non-zero fraction.
        nonzero_fraction = (
            "[0-9]*[1-9][0-9]*"
            if places is None
            else "|".join("0" * z + "[1-9]" + _digits(0, places - z - 1) for z in range(places))
        )
        small = [f"[1-9]{_digits(0, k - 2)}{fraction}", rf"0\.({nonzero_fraction})"]
    else:
        small = [f"(0|[1-9]{_digits(0, k - 2)}){fraction}" if k > 1 else f"0{fraction}"]
    alternatives = [a for a in small if a]
    if bound.maximum is None or places is None:
        alternatives.append(f"[1-9]{_digits(k - 1, k - 1)}{fraction}")
    else:
        alternatives.extend(_up_to(bound.maximum, k, places))
    sign = "-?" if bound.minimum is None else ""
    return rf"^{sign}({'|'.join(alternatives)})$"


def _digits(fewest: int, most: int) -> str:
    """``[0-9]`` repeated ``fewest`` to ``most`` times, spelled as simply as a regex allows."""
    if most <= 0:
        return ""
    if fewest == most:
        return "[0-9]" if most == 1 else f"[0-9]{{{most}}}"
    return f"[0-9]{{{fewest},{most}}}"


def _digit_range(low: int, high: int) -> str:
    return str(low) if low == high else f"[{low}-{high}]"


def _up_to(maximum: Decimal, k: int, places: int) -> list[str]:
    """Alternatives for the ``k``-digit numbers up to ``maximum`` (digit by digit), ``places`` decimals."""
    whole, _, frac = f"{maximum:.{places}f}".partition(".")
    if len(whole) != k:
        raise ValueError("a decimal bound's maximum must have its integer_digits")
    any_fraction = rf"(\.[0-9]{{1,{places}}})?" if places else ""
    alternatives: list[str] = []
    for i, digit in enumerate(whole):
        lowest = 1 if i == 0 else 0
        if int(digit) > lowest:
            below = _digit_range(lowest, int(digit) - 1)
            alternatives.append(f"{whole[:i]}{below}{_digits(k - i - 1, k - i - 1)}{any_fraction}")
    if not places:
        return [*alternatives, whole]
    # The maximum's own integer part: a fraction up to the maximum's (a shorter one is padded with zeros).
    fractions = [frac[:j] for j in range(1, places + 1)]
    fractions += [
        f"{frac[:j]}{_digit_range(0, int(frac[j]) - 1)}{_digits(0, places - j - 1)}"
        for j in range(places)
        if frac[j] != "0"
    ]
    return [*alternatives, rf"{whole}(\.({'|'.join(fractions)}))?"]


# An amount Stratum reports (any sign): whatever the vendor holds, within REPORTED_MONEY_INTEGER_DIGITS.
MONEY_BOUND = DecimalBound()
MoneyAmount = Annotated[
    Decimal,
    msgspec.Meta(
        description="A decimal amount, serialised as a JSON string.",
        examples=["125000.50"],
        extra=MONEY_BOUND.as_extra(),
    ),
]
# Amounts a caller sends to an ERP (or the FP&A system, fed from the ERP): what NetSuite and Business
# Central can both hold.
SIGNED_ERP_MONEY = DecimalBound(integer_digits=15, places=MONEY_DECIMAL_PLACES, maximum=None)
NON_NEGATIVE_ERP_MONEY = dataclasses.replace(SIGNED_ERP_MONEY, minimum="0")
POSITIVE_ERP_MONEY = dataclasses.replace(NON_NEGATIVE_ERP_MONEY, exclusive=True)
# A project's budget and milestone amounts: what Kantata's cents hold (and every ERP).
PROJECT_MONEY = DecimalBound(
    minimum="0", integer_digits=8, places=MONEY_DECIMAL_PLACES, maximum=PSA_MONEY_MAX
)
SignedMoneyAmount = Annotated[
    Decimal,
    msgspec.Meta(
        description=f"An amount (negative for a credit), {SIGNED_ERP_MONEY.describe()}.",
        examples=["-1250.00"],
        extra=SIGNED_ERP_MONEY.as_extra(),
    ),
]
PositiveMoneyAmount = Annotated[
    Decimal,
    msgspec.Meta(
        description=f"An amount, {POSITIVE_ERP_MONEY.describe()}.",
        examples=["1250.00"],
        extra=POSITIVE_ERP_MONEY.as_extra(),
    ),
]
NonNegativeMoneyAmount = Annotated[
    Decimal,
    msgspec.Meta(
        description=f"An amount, {NON_NEGATIVE_ERP_MONEY.describe()}.",
        examples=["1250.00"],
        extra=NON_NEGATIVE_ERP_MONEY.as_extra(),
    ),
]
ProjectMoneyAmount = Annotated[
    Decimal,
    msgspec.Meta(
        description=f"A project amount, as much as the PSA (Kantata's cents) and the ERP can hold: "
        f"{PROJECT_MONEY.describe()}.",
        examples=["120000.00"],
        extra=PROJECT_MONEY.as_extra(),
    ),
]
# Kept for their existing users: the sign bounds alone.
NON_NEGATIVE = {"decimal_minimum": "0"}
POSITIVE = {"decimal_minimum": "0", "decimal_exclusive": True}
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
        require_decimal("amount", self.amount, bound=MONEY_BOUND)


class ProjectMoney(Money, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """An amount in one currency on a project being created (its budget, a milestone): at most what the PSA
    and the ERP can both hold."""

    amount: ProjectMoneyAmount

    def __post_init__(self) -> None:
        require_decimal("amount", self.amount, bound=PROJECT_MONEY)


class SkippedRecord(msgspec.Struct, kw_only=True, frozen=True):
    """A vendor record a list left out because Stratum cannot map it to the contract (e.g. an amount beyond
    what the contract allows); the rest of the page is served. Reading that record by id answers 502
    (``vendor-bad-response``) naming it."""

    id: str
    reason: str


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
    name: str,
    value: Decimal | None,
    *,
    minimum: Decimal | None = None,
    inclusive: bool = True,
    bound: DecimalBound | None = None,
) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a plain decimal ("1234.50": not NaN, not
    infinite, no exponent, as the contract's pattern says) at or above ``minimum`` and within ``bound``."""
    if value is None:
        return
    exponent = value.as_tuple().exponent
    if not value.is_finite() or not isinstance(exponent, int) or exponent > 0:
        raise ValueError(f"`{name}` must be a plain decimal number such as 1234.50")
    if minimum is not None and (value < minimum or (not inclusive and value == minimum)):
        raise ValueError(f"`{name}` must be {'at least' if inclusive else 'above'} {minimum}")
    problem = bound.problem(value) if bound is not None else None
    if problem is not None:
        raise ValueError(f"`{name}` {problem}")


def decimal_text_errors(target: Any, raw: Any) -> list[tuple[str, str]]:
    """``(path, message)`` for each decimal in the decoded JSON ``raw`` that is not a string of its field's
    pattern, for a request body of type ``target``.

    The contract says every decimal travels as a string; msgspec would also take a JSON number (which the
    JSON parser may already have made a float) and forms such as "1e2" or "+1", so a request body is
    checked as text against the same pattern the contract publishes, before it is decoded."""
    errors: list[tuple[str, str]] = []
    _check_text(_type_info(target), raw, "", errors)
    return errors


def _type_info(target: Any) -> msgspec.inspect.Type:
    try:
        return _cached_type_info(target)
    except TypeError:  # an annotation that cannot be a cache key
        return msgspec.inspect.type_info(target)


@functools.lru_cache(maxsize=256)
def _cached_type_info(target: Any) -> msgspec.inspect.Type:
    # Building the type tree costs far more than walking it: once per request body type.
    return msgspec.inspect.type_info(target)


def _check_text(info: msgspec.inspect.Type, raw: Any, path: str, errors: list[tuple[str, str]]) -> None:
    extra: dict[str, Any] | None = None
    if isinstance(info, msgspec.inspect.Metadata):
        extra, info = info.extra, info.type
    if isinstance(info, msgspec.inspect.DecimalType):
        bound = decimal_bound(extra)
        if isinstance(raw, bool) or not isinstance(raw, str):
            if isinstance(raw, (int, float)):
                errors.append((path, 'must be a decimal string such as "1234.50", not a JSON number'))
        elif not re.fullmatch(bound.pattern, raw):
            errors.append((path, f"must be {bound.describe()}"))
    elif isinstance(info, msgspec.inspect.StructType) and isinstance(raw, dict):
        for field in info.fields:
            if field.encode_name in raw:
                name = f"{path}.{field.encode_name}" if path else field.encode_name
                _check_text(field.type, raw[field.encode_name], name, errors)
    elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType)) and isinstance(raw, list):
        for index, item in enumerate(raw):
            _check_text(info.item_type, item, f"{path}[{index}]", errors)
    elif isinstance(info, msgspec.inspect.UnionType) and raw is not None:
        for member in info.types:
            _check_text(member, raw, path, errors)


def is_iso_4217(code: str | None) -> bool:
    """True when ``code`` is an active ISO 4217 currency."""
    return code is not None and code in ISO_4217_CODES


# ISO 4217 minor units (the standard's "list one", 2025), for the active codes whose unit is not 2; every
# other code of ISO_4217_CODES has 2. No installed package carries them (Babel, pycountry and py-moneyed are
# not dependencies), and a table this small is easier to check than one.
_MINOR_UNITS: dict[str, int] = {
    # 0 decimals
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    # 3 decimals
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # 4 decimals
    "CLF": 4, "UYW": 4,
}  # fmt: skip


def minor_unit(currency: str) -> int:
    """The decimals of ``currency``'s minor unit (JPY 0, USD 2, BHD 3); ``ValueError`` for a code that is
    not an active ISO 4217 currency."""
    if not is_iso_4217(currency):
        raise ValueError(f"{currency!r} is not an active ISO 4217 currency")
    return _MINOR_UNITS.get(currency, 2)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded to ``currency``'s minor unit, half up (12.345 USD -> 12.35; 0.5 JPY -> 1)."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


def money_as_kept(amount: Decimal, currency: str) -> Decimal:
    """``amount`` as ``currency`` writes it: at its minor unit (``round_money``), or at 2 places for a code
    this contract does not know (a vendor's own), which is never refused for that."""
    if is_iso_4217(currency):
        return round_money(amount, currency)
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
