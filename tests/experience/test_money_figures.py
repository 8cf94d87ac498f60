"""The figures every view shares: what a PSA item is worth, its age bucket, and totals per currency, each
written at its currency's ISO 4217 minor unit (a yen total has no decimals, a dinar's three)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from contracts.models.billing import UNBILLED_AGE_BUCKETS, BillableItem, BillableItemKind, unbilled_age_bucket
from contracts.models.common import Money
from contracts.models.experience import money_totals


def _time(hours: str, rate: str | None, currency: str) -> BillableItem:
    return BillableItem(
        id="t1",
        kind=BillableItemKind.TIME,
        project_id="p1",
        date=dt.date(2026, 11, 3),
        description="work",
        quantity=Decimal(hours),
        rate=Money(amount=Decimal(rate), currency=currency) if rate else None,
    )


@pytest.mark.parametrize(
    ("hours", "rate", "currency", "worth"),
    [
        ("2.5", "10.00", "USD", "25.00"),
        ("0.25", "150.10", "USD", "37.53"),  # 37.525, half up
        ("1.5", "12345", "JPY", "18518"),  # 18517.5, half up, no decimals
        ("0.333", "10.000", "KWD", "3.330"),
    ],
)
def test_time_is_worth_its_hours_at_the_psa_rate_rounded_as_the_currency_writes_it(
    hours: str, rate: str, currency: str, worth: str
) -> None:
    assert _time(hours, rate, currency).psa_value() == Money(amount=Decimal(worth), currency=currency)


def test_an_expense_is_worth_its_amount_and_time_without_a_rate_is_unpriced_not_zero() -> None:
    expense = BillableItem(
        id="e1",
        kind=BillableItemKind.EXPENSE,
        project_id="p1",
        date=dt.date(2026, 11, 3),
        description="train",
        amount=Money(amount=Decimal("84.20"), currency="EUR"),
    )
    assert expense.psa_value() == Money(amount=Decimal("84.20"), currency="EUR")
    assert _time("3", None, "USD").psa_value() is None


def test_work_ages_into_buckets_at_30_60_and_90_days() -> None:
    assert [unbilled_age_bucket(d) for d in (0, 30, 31, 60, 61, 90, 91, 400)] == [
        "0-30",
        "0-30",
        "31-60",
        "31-60",
        "61-90",
        "61-90",
        "90+",
        "90+",
    ]
    assert UNBILLED_AGE_BUCKETS == ("0-30", "31-60", "61-90", "90+")


def test_totals_are_one_per_currency_never_across_currencies() -> None:
    totals = money_totals(
        [("USD", Decimal("10.1")), ("JPY", Decimal("500")), ("USD", Decimal("0.005")), ("JPY", Decimal("1"))]
    )
    assert [(m.currency, str(m.amount)) for m in totals] == [("JPY", "501"), ("USD", "10.11")]
