"""Canonical planning objects (the FP&A system's world): a project's monthly revenue baseline, its monthly
actuals, the forecast that combines them, and the outcome of publishing either.

A month is the text ``YYYY-MM`` (``"2026-01"``): planning works in calendar months, not days, and the text
sorts in time order. Amounts are decimals travelling as strings, never floats, in the one currency the
document names (an ISO 4217 code).
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from contracts.models.common import (
    MONEY_BOUND,
    SIGNED_ERP_MONEY,
    CurrencyCode,
    ExternalKey,
    MoneyAmount,
    SignedMoneyAmount,
    require_decimal,
)

__all__ = [
    "Forecast",
    "ForecastMonth",
    "ForecastSource",
    "Month",
    "MonthlyAmount",
    "PublishFailure",
    "PublishResult",
    "RevenueActuals",
    "RevenueBaseline",
]

Month = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
        description="A calendar month, YYYY-MM.",
        examples=["2026-01"],
    ),
]


class MonthlyAmount(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """An amount for one calendar month (may be negative, e.g. a credit in the actuals)."""

    month: Month
    amount: SignedMoneyAmount

    def __post_init__(self) -> None:
        require_decimal("amount", self.amount, bound=SIGNED_ERP_MONEY)


_Months = Annotated[
    list[MonthlyAmount],
    msgspec.Meta(
        min_length=1,
        max_length=600,
        description="The amounts by month; several entries for one month add up (e.g. two milestones).",
    ),
]


class RevenueBaseline(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A project's planned revenue by month. Publishing it replaces the project's whole baseline in the FP&A
    system (months left out are no longer planned), so publishing the same baseline twice changes nothing.

    ``external_key`` names this version of the plan (e.g. the opportunity and its revision); it is stored
    with every month, so a month's figure can be traced to the plan that set it."""

    external_key: ExternalKey
    currency: CurrencyCode
    months: _Months


class RevenueActuals(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A project's recognised revenue by month. Publishing replaces all the project's actuals, like a
    baseline; ``external_key`` names the source (e.g. the ERP period close)."""

    external_key: ExternalKey
    currency: CurrencyCode
    months: _Months


class PublishFailure(msgspec.Struct, kw_only=True, frozen=True):
    """A month the FP&A system refused, and why."""

    month: str | None
    message: str


class PublishResult(msgspec.Struct, kw_only=True, frozen=True):
    """What a publish did: the FP&A system's task, the months it loaded, and the months it refused (each in
    ``failures``). A publish with refused months loaded the others; fix them and publish again."""

    task_id: str
    rows_loaded: int
    rows_failed: int
    failures: list[PublishFailure] = []


class ForecastSource(enum.StrEnum):
    ACTUAL = "actual"
    BASELINE = "baseline"


class ForecastMonth(msgspec.Struct, kw_only=True, frozen=True):
    month: str
    amount: MoneyAmount
    source: ForecastSource

    def __post_init__(self) -> None:
        require_decimal("amount", self.amount, bound=MONEY_BOUND)


class Forecast(msgspec.Struct, kw_only=True, frozen=True):
    """A project's current revenue forecast: each month's actual where the month has one (``source``
    ``actual``), else its baseline (``source`` ``baseline``), in month order.

    ``as_of`` is the latest month with actuals; null when no actuals are in yet."""

    project_id: str
    currency: str
    months: list[ForecastMonth]
    as_of: str | None = None
