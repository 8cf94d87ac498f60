"""Pricing one project's billing period: the pure core of a billing run (no I/O).

``price_period`` takes what the run has read (the deal, the PSA project, its unbilled billable items, the
legal entity's billing settings, the ERP customer, what was already invoiced on the project) and answers
one of three outcomes, each a checkpointable struct:

- ``PricedInvoice``: the ERP invoice to raise (``InvoiceCreate`` whose lines name their items'
  source ids: ``time:{id}``, ``expense:{id}``, ``milestone:{id}``, ``retainer:{project}:{YYYY-MM}``), its
  exact total, and what the PSA invoice records (time entry, expense and milestone ids, fee items);
- ``ParkedBilling``: the reasons a person must act on first, each with its owner (project operations or
  finance), a code, the remediation and the items involved (``violation()`` turns them into the saga's
  ``BusinessRuleViolation``, as activation parks);
- ``NothingToBill``: no billable item and no fee for the period (never an empty invoice).

Pricing by billing model:

- time and materials: a role's hours x its rate card rate, one line per role listing every entry (a day
  rate prices hours / ``hours_per_day`` days); expenses one line each at their amount;
- fixed fee and milestone: each completed milestone at its amount, cross-checked against the PSA project's
  and the deal's amount for it (a mismatch parks for finance); time is covered by the fixed price, so it
  is neither billed nor recorded (``not_billed``); expenses are billed;
- retainer: the monthly fee (when the period overlaps the project's dates), plus overage: the time beyond
  ``included_hours`` at the role's rate. Which hours are overage is decided chronologically: every unbilled
  entry on the invoice (a late entry from an earlier month included: the allowance is the invoice's) in
  order of date, then approval time, then id; the first ``included_hours`` are included, the rest are
  overage, an entry straddling the boundary split between both. Overage is one line per role.

Money is exact (``Decimal`` only). Each currency has its ISO 4217 minor unit (``minor_unit``); a line's
amount is rounded once, to that unit, ROUND_HALF_UP (commercial rounding: half a cent goes up, as
invoices are conventionally rounded; Decimal's default, banker's rounding, is not what a customer
checks an invoice with). Every line keeps the invariant ``quantity x unit_price == amount`` *exactly*,
with no rounding left to do, so any ERP multiplying them, whatever its rounding mode, gets the same amount,
and the invoice total is the sum of the lines. Where hours x rate is exact at the minor unit (whole-unit
rates and hundredth hours always are in a two-decimal currency), the line is ``hours x rate`` (or ``days x
day rate``); otherwise it is ``1 x amount`` with the hours and rate in its description (a unit price with
more decimals would not multiply back exactly in general). See ``line_for``.

Guard rails park, never guess: a role with no rate, an item or the rate card in another currency than the
project's, a milestone whose amount disagrees, an amount finer than the currency's minor unit, a customer
on credit hold, an invoice above the project's remaining budget or the legal entity's threshold. Amount
checks (budget, threshold) run only once every item could be priced.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal

import msgspec

from apis.config import LegalEntityBilling
from contracts.models.billing import BillableItem, BillableItemKind, PsaFeeItem, PsaInvoiceCreate
from contracts.models.common import (
    NON_NEGATIVE_ERP_MONEY,
    DecimalBound,
    is_iso_4217,
    minor_unit,
    round_money,
)
from contracts.models.crm import BillingModel, Customer, Opportunity, RateCardLine, RateUnit
from contracts.models.delivery import Project
from contracts.models.finance import QUANTITY, UNIT_PRICE, InvoiceCreate, InvoiceLineInput
from contracts.models.process import Owner
from process_apis.saga import BusinessRuleViolation

__all__ = [
    "BillingOutcome",
    "BillingPeriod",
    "NotBilled",
    "NothingToBill",
    "ParkReason",
    "ParkedBilling",
    "PeriodError",
    "PricedInvoice",
    "billing_key",
    "billing_key_as_written",
    "line_amount",
    "line_for",
    "milestone_billing_key",
    "milestone_run_id",
    "minor_unit",
    "parse_billing_key",
    "parse_period",
    "price_period",
    "project_run_id",
    "round_money",
    "run_id_of_billing_key",
]

# --- currencies -------------------------------------------------------------------------------------------

# The ISO 4217 minor units live with the currency codes (contracts.models.common), so every tier rounds alike.


def _is_exact(amount: Decimal, currency: str) -> bool:
    return amount == round_money(amount, currency)


def _fits(value: Decimal, bound: DecimalBound) -> bool:
    return bound.problem(value) is None


def line_amount(line: InvoiceLineInput) -> Decimal:
    """What an ERP computes for a line: quantity x unit price (exact for every line ``line_for`` makes)."""
    return line.quantity * line.unit_price


# --- periods and keys -------------------------------------------------------------------------------------

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_RECORD_ID = re.compile(r"[A-Za-z0-9_:.-]{1,64}")


class PeriodError(ValueError):
    """A billing period that is malformed or not yet over."""


@dataclasses.dataclass(frozen=True, slots=True)
class BillingPeriod:
    """A calendar month billed at once: ``2026-11``."""

    year: int
    month: int

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def last_day(self) -> dt.date:
        return dt.date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    @property
    def day_after(self) -> dt.date:
        return self.last_day + dt.timedelta(days=1)

    @property
    def label(self) -> str:
        """As an invoice line says it: "November 2026"."""
        return f"{calendar.month_name[self.month]} {self.year}"

    def __str__(self) -> str:
        return self.key


def parse_period(text: str, *, today: dt.date | None = None) -> BillingPeriod:
    """The month ``text`` ("YYYY-MM") names. ``PeriodError`` when it is malformed, or not over yet (its last
    day is today or later, UTC): a month is billed once all its days are past, so its invoice date (the day
    after it) is never in the future."""
    match = _PERIOD.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise PeriodError(f"billing period {text!r} is not a month written YYYY-MM, e.g. 2026-11")
    period = BillingPeriod(int(match.group(1)), int(match.group(2)))
    if period.year < 2000:
        raise PeriodError(f"billing period {text!r} is before 2000")
    today = today or dt.datetime.now(dt.UTC).date()
    if period.last_day >= today:
        raise PeriodError(f"billing period {text} is not over yet: it can be billed from {period.day_after}")
    return period


def billing_key(project_id: str, period: BillingPeriod | str, revision: int = 1) -> str:
    """The business key of a project's invoice for a period, ``bill:{psa project id}:{YYYY-MM}``: the ERP
    invoice's and the PSA invoice's external key.

    A project-period billed again after its invoice was cancelled (voided in the ERP, cancelled in the PSA)
    is its next ``revision``, keyed ``bill:{project}:{YYYY-MM}:r{n}`` (n >= 2): never the voided invoice's
    key, because every vendor finds an invoice by it before writing (NetSuite ``invoice/eid:{key}``,
    Business Central ``externalDocumentNumber``, Kantata's external reference) and would hand back the
    voided one. A Kantata (numeric) project id keeps a revision key well within Business Central's 35
    characters of ``externalDocumentNumber`` (``bill:`` + 10 digits + ``:2026-11:r99`` is 27)."""
    key = period.key if isinstance(period, BillingPeriod) else period
    if not _RECORD_ID.fullmatch(project_id):
        raise ValueError(f"project id {project_id!r} cannot be part of a billing key")
    if not _PERIOD.fullmatch(key):
        raise PeriodError(f"billing period {key!r} is not a month written YYYY-MM")
    if revision < 1:
        raise ValueError(f"billing revision {revision} is not 1 or more")
    return f"bill:{project_id}:{key}" if revision == 1 else f"bill:{project_id}:{key}:r{revision}"


def milestone_billing_key(project_id: str, day: dt.date) -> str:
    """The business key of the invoice that bills ``project_id``'s completed milestones on ``day`` (a
    milestone deal billed on completion), ``bill:{project}:{YYYY-MM}:d{DD}``: another key than the month's
    (``billing_key``), so the two never meet in a vendor; the month keeps ``parse_billing_key`` mapping it
    to (project, period); 4 characters more than the month's key, within Business Central's 35."""
    return f"{billing_key(project_id, f'{day.year:04d}-{day.month:02d}')}:d{day.day:02d}"


def _split_billing_key(key: str | None) -> tuple[str, str, str] | None:
    """(project, ``YYYY-MM``, suffix: ``""``, ``r{n}`` or ``d{DD}``, as found) of a billing key, the prefix
    and the suffix in any case; None for any other key."""
    if not key or key[:5].lower() != "bill:":
        return None
    rest, suffix = key[len("bill:") :], ""
    head, _, last = rest.rpartition(":")
    if head and len(last) >= 2 and last[0] in "rRdD" and last[1:].isascii() and last[1:].isdigit():
        rest, suffix = head, last
    project, _, period = rest.rpartition(":")
    if not project or len(period) != 7 or period[4] != "-":
        return None
    return project, period, suffix


def parse_billing_key(key: str | None) -> tuple[str, str] | None:
    """(PSA project id, ``YYYY-MM``) of a billing key ``bill:{project}:{YYYY-MM}``, of a later revision's
    ``bill:{project}:{YYYY-MM}:r{n}`` (a project-period billed again after a cancel), or of a milestone
    invoice's ``bill:{project}:{YYYY-MM}:d{DD}`` (milestones billed on completion); None for any other key
    (an invoice Stratum did not bill). The project id may itself hold colons: the period is the last part
    before the revision. The prefix is matched in any case: Business Central keeps
    ``externalDocumentNumber`` (a Code field) in upper case, so a billing key reads back as
    ``BILL:{project}:{YYYY-MM}`` (``...:R2``) there."""
    split = _split_billing_key(key)
    return split[:2] if split is not None else None


def billing_key_as_written(key: str) -> str:
    """A billing key as the billing run wrote it (the PSA invoice is found by it), from the ERP's copy: a
    Business Central invoice made before its key was kept in a comment line answers the key upper-cased,
    whose prefix and suffix are Stratum's own lower case (and Kantata project ids are digits)."""
    split = _split_billing_key(key)
    if split is None:
        return key
    project, period, suffix = split
    return f"bill:{project}:{period}" + (f":{suffix.lower()}" if suffix else "")


def project_run_id(project_id: str, period: str, revision: int = 1) -> str:
    """The one workflow that bills ``project_id`` for ``period``, whichever billing runs cover it; after a
    cancel, revision ``n`` (``-r{n}``) bills it again (see ``process_apis.billing.billing_revision``)."""
    base = f"bill-{project_id}-{period}"
    return base if revision == 1 else f"{base}-r{revision}"


def milestone_run_id(project_id: str, day: dt.date) -> str:
    """The one workflow that bills ``project_id``'s milestones completed by ``day``, however often the
    milestone schedule fires that day."""
    return f"bill-{project_id}-{day.isoformat()}"


def run_id_of_billing_key(key: str | None) -> str | None:
    """The project run that billed under ``key`` (``project_run_id`` or ``milestone_run_id``, from the key
    as any vendor keeps it); None for a key no billing run wrote. Finance's invoice lineage walks from an
    invoice to its run by it."""
    split = _split_billing_key(key)
    if split is None:
        return None
    project, period, suffix = split
    if not suffix:
        return project_run_id(project, period)
    number = int(suffix[1:])
    if suffix[0] in "rR":
        return project_run_id(project, period, number)
    return f"bill-{project}-{period}-{number:02d}"


def source_id(item: BillableItem) -> str:
    return f"{item.kind.value}:{item.id}"


# --- outcomes ---------------------------------------------------------------------------------------------


class ParkReason(msgspec.Struct, kw_only=True, frozen=True):
    """Why a run cannot bill yet: who fixes it, how, and the items involved (their source ids)."""

    owner: Owner
    code: str
    message: str
    remediation: str
    item_ids: list[str] = []


class NotBilled(msgspec.Struct, kw_only=True, frozen=True):
    """An unbilled item this invoice leaves alone, and why (e.g. time on a fixed-fee deal)."""

    item_id: str
    reason: str


class ParkedBilling(msgspec.Struct, kw_only=True, frozen=True, tag="parked"):
    billing_key: str
    project_id: str
    period: str
    reasons: list[ParkReason]

    @property
    def owner(self) -> Owner:
        """Who acts first: the first reason's owner (data problems come before amount checks)."""
        return self.reasons[0].owner

    def violation(self) -> BusinessRuleViolation:
        """The saga's business-rule failure that parks the run with these reasons."""
        codes = list(dict.fromkeys(r.code for r in self.reasons))
        return BusinessRuleViolation(
            f"The {self.period} invoice of project {self.project_id} cannot be made: "
            + " ".join(r.message for r in self.reasons),
            owner=self.owner,
            remediation=" ".join(dict.fromkeys(r.remediation for r in self.reasons))
            + " Then replay the run.",
            code=codes[0] if len(codes) == 1 else "billing-parked",
            data={"billing_key": self.billing_key, "reasons": msgspec.to_builtins(self.reasons)},
        )


class NothingToBill(msgspec.Struct, kw_only=True, frozen=True, tag="nothing_to_bill"):
    billing_key: str
    project_id: str
    period: str
    message: str
    not_billed: list[NotBilled] = []


class PricedInvoice(msgspec.Struct, kw_only=True, frozen=True, tag="priced"):
    billing_key: str
    project_id: str
    period: str
    invoice: InvoiceCreate
    currency: str
    total: Decimal
    # The PSA invoice's items (PSA ids) and fees: exactly what the ERP lines name.
    time_entry_ids: list[str] = []
    expense_ids: list[str] = []
    milestone_ids: list[str] = []
    fee_items: list[PsaFeeItem] = []
    # The legal entity reviews invoices: ``invoice.draft`` is set, finance approves before it is posted.
    finance_review: bool = False
    not_billed: list[NotBilled] = []

    def psa_invoice(
        self, *, erp_invoice_id: str | None = None, erp_invoice_number: str | None = None, draft: bool = True
    ) -> PsaInvoiceCreate:
        """The PSA invoice recording this invoice against exactly its items."""
        return PsaInvoiceCreate(
            external_key=self.billing_key,
            project_id=self.project_id,
            currency=self.currency,
            invoice_date=self.invoice.issue_date,
            due_date=self.invoice.due_date,
            time_entry_ids=list(self.time_entry_ids),
            expense_ids=list(self.expense_ids),
            milestone_ids=list(self.milestone_ids),
            fee_items=list(self.fee_items),
            erp_invoice_id=erp_invoice_id,
            erp_invoice_number=erp_invoice_number,
            draft=draft,
        )


BillingOutcome = PricedInvoice | ParkedBilling | NothingToBill


# --- lines ------------------------------------------------------------------------------------------------

_DESCRIPTION_MAX = 255
# What one ERP invoice (InvoiceCreate.lines) and one PSA invoice's item list (PsaInvoiceCreate) hold.
_LINES_MAX = 500
_ITEMS_MAX = 5000


def _number(value: Decimal, places: int = 2) -> str:
    """A quantity or rate as a person reads it: at least ``places`` decimals, at most 5 (a day count such
    as 10 h / 7.5 h is shown 1.33333; the line's amount is priced from the exact value)."""
    return f"{value:,.{min(max(places, _decimals(value)), 5)}f}"


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _describe(head: str, tail: str) -> str:
    """``head — tail``, the head (a role's name) shortened so the whole fits a line description."""
    room = _DESCRIPTION_MAX - len(tail) - 3
    if len(head) > room:
        head = head[: max(room - 1, 1)] + "…"
    return f"{head} — {tail}"[:_DESCRIPTION_MAX]


def line_for(
    *,
    head: str,
    quantity: Decimal,
    unit_price: Decimal,
    exact_amount: Decimal,
    currency: str,
    shown: str,
    source_ids: list[str],
) -> tuple[InvoiceLineInput, Decimal] | None:
    """One invoice line worth ``exact_amount`` rounded to ``currency``'s minor unit (half up), as
    ``quantity x unit_price`` when that product is exactly the rounded amount and both fit a line, else as
    ``1 x amount`` (``shown`` keeps the quantity and rate in the description). ``(line, amount)``; None when
    even the amount alone is more than one line's unit price can hold."""
    amount = round_money(exact_amount, currency)
    if quantity * unit_price == amount and _fits(quantity, QUANTITY) and _fits(unit_price, UNIT_PRICE):
        line = InvoiceLineInput(
            description=_describe(head, shown),
            quantity=quantity,
            unit_price=unit_price,
            source_ids=source_ids,
        )
        return line, amount
    if not _fits(amount, UNIT_PRICE):
        return None
    line = InvoiceLineInput(
        description=_describe(head, shown), quantity=Decimal(1), unit_price=amount, source_ids=source_ids
    )
    return line, amount


# --- pricing ----------------------------------------------------------------------------------------------

_PROJECT_OPS = Owner.PROJECT_OPERATIONS
_FINANCE = Owner.FINANCE


def _chronological(item: BillableItem) -> tuple[dt.date, dt.datetime, str]:
    approved = item.approved_at or dt.datetime.min.replace(tzinfo=dt.UTC)
    if approved.tzinfo is None:
        approved = approved.replace(tzinfo=dt.UTC)
    return item.date, approved, item.id


class _Pricing:
    """One pricing's working state: the lines so far, the items they bill, the reasons to park."""

    def __init__(self, currency: str, period: BillingPeriod) -> None:
        self.currency = currency
        self.period = period
        self.lines: list[InvoiceLineInput] = []
        self.amounts: list[Decimal] = []
        self.reasons: list[ParkReason] = []
        self.time_ids: list[str] = []
        self.expense_ids: list[str] = []
        self.milestone_ids: list[str] = []
        self.fee_items: list[PsaFeeItem] = []
        self.not_billed: list[NotBilled] = []

    def park(
        self, owner: Owner, code: str, message: str, remediation: str, items: Iterable[str] = ()
    ) -> None:
        self.reasons.append(
            ParkReason(owner=owner, code=code, message=message, remediation=remediation, item_ids=list(items))
        )

    def add(self, made: tuple[InvoiceLineInput, Decimal] | None, what: str, items: list[str]) -> bool:
        if made is None:
            self.park(
                _FINANCE,
                "line-too-large",
                f"The line for {what} is more than one invoice line can hold.",
                "Bill the period in parts (split the work across projects or periods) with finance.",
                items,
            )
            return False
        self.lines.append(made[0])
        self.amounts.append(made[1])
        return True

    def fee(self, description: str, amount: Decimal, items: list[str]) -> None:
        # The PSA keeps fees in cents (Kantata), at most 2 decimals: a 3-decimal fee cannot be recorded.
        if not _fits(amount, NON_NEGATIVE_ERP_MONEY):
            self.park(
                _FINANCE,
                "fee-not-representable",
                f"The fee {amount} {self.currency} ({description}) cannot be recorded in the PSA, "
                "which keeps fees in hundredths.",
                "Set the retainer fee and rates in whole hundredths of the currency on the deal.",
                items,
            )
            return
        self.fee_items.append(PsaFeeItem(description=description[:_DESCRIPTION_MAX], amount=amount))


def _rate_index(deal: Opportunity) -> dict[str, RateCardLine]:
    # Roles are matched case- and space-insensitively: "Senior consultant " is "Senior Consultant".
    return {" ".join(line.role.split()).casefold(): line for line in deal.rate_card}


def _role_key(role: str | None) -> str:
    return " ".join((role or "").split()).casefold()


def _hours_priced(
    pricing: _Pricing,
    *,
    head: str,
    role_line: RateCardLine,
    hours: Decimal,
    hours_per_day: Decimal,
    source_ids: list[str],
) -> None:
    rate = role_line.rate.amount
    label = pricing.period.label
    if role_line.unit == RateUnit.DAY:
        days = hours / hours_per_day
        exact = days * rate
        shown = f"{_number(hours)} h ({_number(days, 0)} d) @ {_number(rate)}/day, {label}"
        made = line_for(
            head=head,
            quantity=days,
            unit_price=rate,
            exact_amount=exact,
            currency=pricing.currency,
            shown=shown,
            source_ids=source_ids,
        )
    else:
        shown = f"{_number(hours)} h @ {_number(rate)}, {label}"
        made = line_for(
            head=head,
            quantity=hours,
            unit_price=rate,
            exact_amount=hours * rate,
            currency=pricing.currency,
            shown=shown,
            source_ids=source_ids,
        )
    pricing.add(made, head, source_ids)


def _rate_problem(pricing: _Pricing, line: RateCardLine, ids: list[str]) -> bool:
    """Park (and say True) when the rate of a role being billed cannot price it."""
    if line.rate.currency != pricing.currency:
        pricing.park(
            _PROJECT_OPS,
            "rate-currency-mismatch",
            f"The rate for {line.role} is in {line.rate.currency}, the project bills in {pricing.currency}.",
            f"Give the deal's rate card the rate for {line.role} in {pricing.currency}.",
            ids,
        )
        return True
    if line.rate.amount < 0 or not _fits(line.rate.amount, UNIT_PRICE):
        pricing.park(
            _PROJECT_OPS,
            "rate-invalid",
            f"The rate {line.rate.amount} for {line.role} is not a rate an invoice can carry.",
            f"Correct the rate for {line.role} on the deal's rate card.",
            ids,
        )
        return True
    return False


def _price_time_by_role(
    pricing: _Pricing,
    entries: list[tuple[BillableItem, Decimal]],
    rates: dict[str, RateCardLine],
    hours_per_day: Decimal,
    *,
    prefix: str = "",
) -> None:
    """One line per role for ``entries`` (an item and the hours of it priced here)."""
    by_role: dict[str, list[tuple[BillableItem, Decimal]]] = defaultdict(list)
    for item, hours in entries:
        by_role[_role_key(item.role)].append((item, hours))
    missing: dict[str, list[str]] = {}
    for role, group in sorted(by_role.items()):
        rate_line = rates.get(role)
        if rate_line is None:
            missing[group[0][0].role or ""] = [source_id(item) for item, _ in group]
            continue
        hours = sum((h for _, h in group), Decimal(0))
        ids = list(dict.fromkeys(source_id(item) for item, _ in group))
        if _rate_problem(pricing, rate_line, ids):
            continue
        _hours_priced(
            pricing,
            head=f"{prefix}{rate_line.role}",
            role_line=rate_line,
            hours=hours,
            hours_per_day=hours_per_day,
            source_ids=ids,
        )
    for role, ids in missing.items():
        name = role or "(no role)"
        pricing.park(
            _PROJECT_OPS,
            "rate-missing",
            f"The deal's rate card has no rate for {name}, which {len(ids)} time entries are booked as.",
            f"Add the rate for {name} to the deal's rate card"
            + (" (or give the entries a role in the PSA)" if not role else "")
            + ".",
            ids,
        )


def _price_expenses(pricing: _Pricing, expenses: list[BillableItem], *, room: int) -> None:
    """One line per expense, or, when that would take more than ``room`` lines, one line for them all."""
    valid: list[BillableItem] = []
    for item in sorted(expenses, key=_chronological):
        sid = source_id(item)
        if item.amount is None or item.amount.amount < 0:
            pricing.park(
                _PROJECT_OPS,
                "expense-amount-invalid",
                f"The expense {item.id} has no amount, or a negative one.",
                "Correct the expense's amount in the PSA (a refund is a credit, not a billable expense).",
                [sid],
            )
            continue
        if not _is_exact(item.amount.amount, pricing.currency):
            pricing.park(
                _PROJECT_OPS,
                "amount-finer-than-currency",
                f"The expense {item.id} of {item.amount.amount} is finer than a {pricing.currency} "
                "minor unit.",
                "Correct the expense's amount in the PSA.",
                [sid],
            )
            continue
        valid.append(item)
    if len(valid) > room:
        ids = [source_id(i) for i in valid]
        amount = sum((i.amount.amount for i in valid if i.amount is not None), Decimal(0))
        made = line_for(
            head="Expenses",
            quantity=Decimal(1),
            unit_price=amount,
            exact_amount=amount,
            currency=pricing.currency,
            shown=f"{len(valid)} expenses, {pricing.period.label}",
            source_ids=ids,
        )
        if pricing.add(made, "the expenses", ids):
            pricing.expense_ids.extend(i.id for i in valid)
        return
    for item in valid:
        sid = source_id(item)
        assert item.amount is not None
        made = line_for(
            head=item.description.strip() or "Expense",
            quantity=Decimal(1),
            unit_price=item.amount.amount,
            exact_amount=item.amount.amount,
            currency=pricing.currency,
            shown=f"expense {item.date.isoformat()}",
            source_ids=[sid],
        )
        if pricing.add(made, f"expense {item.id}", [sid]):
            pricing.expense_ids.append(item.id)


def _price_milestones(
    pricing: _Pricing, milestones: list[BillableItem], deal: Opportunity, project: Project
) -> None:
    project_milestones = {m.id: m for m in project.milestones}
    deal_milestones = {" ".join(m.name.split()).casefold(): m for m in deal.milestones}
    for item in sorted(milestones, key=_chronological):
        sid = source_id(item)
        psa = project_milestones.get(item.id)
        name = psa.name if psa is not None else item.description
        deal_ms = deal_milestones.get(" ".join(name.split()).casefold())
        amounts = {
            "the PSA item": item.amount,
            "the PSA project's milestone": psa.amount if psa is not None else None,
            "the deal's milestone": deal_ms.amount if deal_ms is not None else None,
        }
        if item.amount is None or item.amount.amount <= 0:
            pricing.park(
                _FINANCE,
                "milestone-amount-missing",
                f"The milestone {name!r} has no amount to bill.",
                f"Set the amount of milestone {name!r} in the PSA as the deal agrees.",
                [sid],
            )
            continue
        if deal_ms is None:
            pricing.park(
                _FINANCE,
                "milestone-not-in-deal",
                f"The milestone {name!r} is not one of the deal's milestones, so its amount cannot be "
                "checked.",
                f"Add milestone {name!r} to the deal (or rename the PSA's milestone to the deal's name).",
                [sid],
            )
            continue
        disagree = sorted(
            f"{where} says {money.amount} {money.currency}"
            for where, money in amounts.items()
            if money is not None
            and (money.amount != item.amount.amount or money.currency != item.amount.currency)
        )
        if disagree or deal_ms.amount is None:
            pricing.park(
                _FINANCE,
                "milestone-amount-mismatch",
                f"The milestone {name!r} bills {item.amount.amount} {item.amount.currency}, but "
                + ("; ".join(disagree) if disagree else "the deal's milestone has no amount")
                + ".",
                f"Agree the amount of milestone {name!r} and correct the PSA project or the deal.",
                [sid],
            )
            continue
        if item.amount.currency != pricing.currency:
            pricing.park(
                _PROJECT_OPS,
                "currency-mismatch",
                f"The milestone {name!r} is in {item.amount.currency}, the project bills in "
                f"{pricing.currency}.",
                f"Correct the milestone's currency in the PSA to {pricing.currency}.",
                [sid],
            )
            continue
        if not _is_exact(item.amount.amount, pricing.currency):
            pricing.park(
                _FINANCE,
                "amount-finer-than-currency",
                f"The milestone {name!r} amount {item.amount.amount} is finer than a {pricing.currency} "
                "minor unit.",
                f"Correct the amount of milestone {name!r} in the PSA and the deal.",
                [sid],
            )
            continue
        made = line_for(
            head=name.strip() or "Milestone",
            quantity=Decimal(1),
            unit_price=item.amount.amount,
            exact_amount=item.amount.amount,
            currency=pricing.currency,
            shown=f"milestone, {pricing.period.label}",
            source_ids=[sid],
        )
        if pricing.add(made, f"milestone {name!r}", [sid]):
            pricing.milestone_ids.append(item.id)


def _overlaps(project: Project, period: BillingPeriod) -> bool:
    if project.start_date is not None and project.start_date > period.last_day:
        return False
    return not (project.end_date is not None and project.end_date < period.first_day)


def _price_retainer(
    pricing: _Pricing,
    *,
    deal: Opportunity,
    project: Project,
    time: list[BillableItem],
    rates: dict[str, RateCardLine],
    hours_per_day: Decimal,
) -> None:
    retainer_id = f"retainer:{project.id}:{pricing.period.key}"
    terms = deal.retainer
    if terms is None:
        pricing.park(
            _PROJECT_OPS,
            "retainer-terms-missing",
            "The deal bills a retainer but names no monthly fee or included hours.",
            "Set the retainer's monthly fee and included hours on the deal.",
            [retainer_id],
        )
        return
    if terms.monthly_fee.currency != pricing.currency:
        pricing.park(
            _PROJECT_OPS,
            "currency-mismatch",
            f"The retainer fee is in {terms.monthly_fee.currency}, the project bills in {pricing.currency}.",
            f"Set the deal's retainer fee in {pricing.currency}.",
            [retainer_id],
        )
        return
    fee = terms.monthly_fee.amount
    if fee < 0 or not _is_exact(fee, pricing.currency) or terms.included_hours < 0:
        pricing.park(
            _PROJECT_OPS,
            "retainer-terms-invalid",
            f"The retainer's fee {fee} {pricing.currency} or included hours {terms.included_hours} cannot be "
            "billed (negative, or finer than the currency's minor unit).",
            "Correct the retainer's monthly fee and included hours on the deal.",
            [retainer_id],
        )
        return
    # Chronological: the first included_hours of the invoice's time are covered by the fee.
    left = terms.included_hours
    included: list[str] = []
    overage: list[tuple[BillableItem, Decimal]] = []
    for item in sorted(time, key=_chronological):
        covered = min(left, item.quantity)
        left -= covered
        if covered > 0 or item.quantity == 0:
            included.append(source_id(item))
        if item.quantity - covered > 0:
            overage.append((item, item.quantity - covered))
    if fee > 0 and _overlaps(project, pricing.period):
        head = "Retainer"
        shown = f"monthly fee, {_number(terms.included_hours)} h included, {pricing.period.label}"
        ids = [retainer_id, *included]
        made = line_for(
            head=head,
            quantity=Decimal(1),
            unit_price=fee,
            exact_amount=fee,
            currency=pricing.currency,
            shown=shown,
            source_ids=ids,
        )
        if pricing.add(made, "the retainer fee", ids):
            pricing.fee(f"Retainer — monthly fee, {pricing.period.label}", fee, [retainer_id])
    elif included:
        # No fee this period (outside the project's dates): the covered time still needs a line to trace to.
        pricing.add(
            line_for(
                head="Retainer",
                quantity=Decimal(1),
                unit_price=Decimal(0),
                exact_amount=Decimal(0),
                currency=pricing.currency,
                shown=f"hours included, {pricing.period.label}",
                source_ids=included,
            ),
            "included hours",
            included,
        )
    before = len(pricing.amounts)
    _price_time_by_role(pricing, overage, rates, hours_per_day, prefix="Overage — ")
    for line, amount in zip(pricing.lines[before:], pricing.amounts[before:], strict=True):
        pricing.fee(line.description, amount, list(line.source_ids))


def price_period(
    *,
    deal: Opportunity,
    project: Project,
    items: Sequence[BillableItem],
    period: BillingPeriod,
    customer: Customer,
    entity: LegalEntityBilling | None,
    already_invoiced: Decimal = Decimal(0),
    erp_project_id: str | None = None,
    invoice_date: dt.date | None = None,
    hours_per_day: Decimal = Decimal(8),
    revision: int = 1,
    on_day: dt.date | None = None,
) -> BillingOutcome:
    """Price ``project``'s unbilled ``items`` for ``period`` (see the module doc).

    ``customer`` is the ERP customer billed (its id is the invoice's customer; its ``credit_hold`` as the
    ERP says); ``already_invoiced`` the project's invoiced total so far in its currency, net of credits,
    for the remaining-budget check; ``entity`` the legal entity's billing settings (None: it has none,
    which parks for finance). Items dated after the period, already invoiced, or of another project are
    left out (``not_billed``); ``revision`` the project-period's billing revision (``billing_key``).

    ``on_day``: bill only the milestones completed by that day, at once (a milestone deal billed on
    completion, keyed ``milestone_billing_key``, dated ``on_day``); every other item is left to the
    month's invoice. The PSA claims each milestone for one invoice, so whichever invoice gets it first
    bills it, and the other leaves it out as already invoiced."""
    key = milestone_billing_key(project.id, on_day) if on_day else billing_key(project.id, period, revision)
    parked: list[ParkReason] = []

    def outcome_parked(reasons: list[ParkReason]) -> ParkedBilling:
        order = {_PROJECT_OPS: 0, _FINANCE: 1}
        reasons = sorted(reasons, key=lambda r: order.get(r.owner, 2))  # stable: check order kept
        return ParkedBilling(billing_key=key, project_id=project.id, period=period.key, reasons=reasons)

    currency = project.currency or ""
    if not is_iso_4217(currency):
        parked.append(
            ParkReason(
                owner=_PROJECT_OPS,
                code="project-currency-missing",
                message=f"The PSA project's currency {project.currency!r} is missing or not an ISO 4217 "
                "code.",
                remediation="Set the project's currency in the PSA.",
            )
        )
        return outcome_parked(parked)
    pricing = _Pricing(currency, period)

    # Which items this invoice bills.
    billable: list[BillableItem] = []
    for item in items:
        if item.project_id != project.id:
            pricing.not_billed.append(NotBilled(item_id=source_id(item), reason="another project's item"))
        elif item.invoiced or item.psa_invoice_id is not None:
            pricing.not_billed.append(NotBilled(item_id=source_id(item), reason="already invoiced"))
        elif item.date > period.last_day:
            pricing.not_billed.append(NotBilled(item_id=source_id(item), reason="dated after the period"))
        elif on_day is not None and item.kind != BillableItemKind.MILESTONE:
            pricing.not_billed.append(
                NotBilled(item_id=source_id(item), reason="billed by the month's invoice")
            )
        elif on_day is not None and item.date > on_day:
            pricing.not_billed.append(NotBilled(item_id=source_id(item), reason="dated after the day billed"))
        else:
            billable.append(item)
    billable = list({source_id(i): i for i in billable}.values())  # a page served twice bills once

    # Currency of every item, before any is priced.
    wrong_currency = [
        i
        for i in billable
        if any(m is not None and m.currency != currency for m in (i.rate, i.amount))
        and i.kind != BillableItemKind.MILESTONE
    ]
    if wrong_currency:
        found = sorted(
            {m.currency for i in wrong_currency for m in (i.rate, i.amount) if m is not None} - {currency}
        )
        pricing.park(
            _PROJECT_OPS,
            "currency-mismatch",
            f"{len(wrong_currency)} items are in {', '.join(found)}, the project bills in {currency}.",
            f"Correct the items' currency in the PSA to {currency} (or move them to a project in their "
            "currency).",
            [source_id(i) for i in wrong_currency],
        )
        billable = [i for i in billable if i not in wrong_currency]

    time = [i for i in billable if i.kind == BillableItemKind.TIME]
    expenses = [i for i in billable if i.kind == BillableItemKind.EXPENSE]
    milestones = [i for i in billable if i.kind == BillableItemKind.MILESTONE]
    # A retainer's fee is billed from the deal's terms (its source id made here), never from a PSA item.
    pricing.not_billed.extend(
        NotBilled(item_id=source_id(i), reason="a retainer fee is billed from the deal's terms")
        for i in billable
        if i.kind == BillableItemKind.RETAINER
    )
    negative = [i for i in time if i.quantity < 0]
    if negative:
        pricing.park(
            _PROJECT_OPS,
            "hours-invalid",
            f"{len(negative)} time entries have negative hours.",
            "Correct the time entries' hours in the PSA.",
            [source_id(i) for i in negative],
        )
        time = [i for i in time if i.quantity >= 0]

    model = deal.billing_model or project.billing_model
    rates = _rate_index(deal)
    if model is None:
        pricing.park(
            _PROJECT_OPS,
            "billing-model-missing",
            "Neither the deal nor the PSA project says how the work is billed.",
            "Set the billing model on the deal (time and materials, fixed fee, milestone or retainer).",
        )
    elif model == BillingModel.TIME_AND_MATERIALS:
        _price_time_by_role(pricing, [(i, i.quantity) for i in time], rates, hours_per_day)
        pricing.time_ids = [i.id for i in time]
    elif model == BillingModel.RETAINER and on_day is None:  # a retainer's fee is the month's
        _price_retainer(
            pricing, deal=deal, project=project, time=time, rates=rates, hours_per_day=hours_per_day
        )
        pricing.time_ids = [i.id for i in time]
    else:
        pricing.not_billed.extend(
            NotBilled(
                item_id=source_id(i), reason=f"time is covered by the {model.value.replace('_', ' ')} price"
            )
            for i in time
        )
    if model is not None:
        _price_milestones(pricing, milestones, deal, project)
        _price_expenses(pricing, expenses, room=_LINES_MAX - len(pricing.lines))
    if len(pricing.time_ids) > _ITEMS_MAX or any(len(line.source_ids) > _ITEMS_MAX for line in pricing.lines):
        pricing.park(
            _FINANCE,
            "too-many-items",
            f"The period has more than {_ITEMS_MAX} time entries to bill on one invoice.",
            "Bill the project in smaller parts with finance (the PSA records at most "
            f"{_ITEMS_MAX} items of a kind per invoice).",
        )

    # The customer and the legal entity.
    if customer.credit_hold:
        pricing.park(
            _FINANCE,
            "credit-hold",
            f"The customer {customer.name} is on credit hold in the ERP.",
            "Release the customer's credit hold in the ERP (or agree with the account team to wait).",
        )
    if entity is None:
        pricing.park(
            _FINANCE,
            "legal-entity-not-configured",
            f"The legal entity {project.legal_entity or deal.legal_entity!r} has no billing settings.",
            "Add the legal entity to STRATUM_BILLING__LEGAL_ENTITIES (tax code, review, threshold, terms).",
        )

    if pricing.reasons:
        return outcome_parked(pricing.reasons)
    if not pricing.lines:
        return NothingToBill(
            billing_key=key,
            project_id=project.id,
            period=period.key,
            message=f"Nothing to bill on project {project.id} for {period.label}: no unbilled item or fee.",
            not_billed=pricing.not_billed,
        )
    assert entity is not None
    total = sum(pricing.amounts, Decimal(0))

    # Amount checks, once everything is priced.
    if project.budget is not None:
        if project.budget.currency != currency:
            pricing.park(
                _FINANCE,
                "budget-currency-mismatch",
                f"The project's budget is in {project.budget.currency}, it bills in {currency}.",
                f"Correct the project's budget currency in the PSA to {currency}.",
            )
        else:
            remaining = project.budget.amount - already_invoiced
            if total > remaining:
                pricing.park(
                    _FINANCE,
                    "budget-exceeded",
                    f"The invoice of {total} {currency} exceeds the project's remaining budget of "
                    f"{remaining} {currency} (budget {project.budget.amount}, invoiced {already_invoiced}).",
                    "Raise the project's budget (a change order on the deal), or agree with the customer "
                    "which work to bill; finance decides.",
                    [i for line in pricing.lines for i in line.source_ids],
                )
    if entity.has_threshold:
        threshold = entity.threshold_for(currency)
        if threshold is None:
            pricing.park(
                _FINANCE,
                "threshold-currency-unknown",
                f"The legal entity has an invoice threshold, but none in {currency}.",
                f"Add a {currency} threshold to the legal entity's invoice_thresholds, then replay the run.",
            )
        elif total > threshold:
            pricing.park(
                _FINANCE,
                "threshold-exceeded",
                f"The invoice of {total} {currency} is above the legal entity's threshold of {threshold} "
                f"{currency}.",
                "Finance reviews the invoice: approve it by replaying the run with a raised threshold, or "
                "cancel the run.",
                [i for line in pricing.lines for i in line.source_ids],
            )
    if pricing.reasons:
        return outcome_parked(pricing.reasons)

    issue = (
        invoice_date
        or on_day
        or (period.day_after if entity.invoice_date == "day_after_period" else period.last_day)
    )
    terms = deal.payment_terms_days if deal.payment_terms_days is not None else entity.payment_terms_days
    invoice = InvoiceCreate(
        external_key=key,
        customer_id=customer.id,
        currency=currency,
        issue_date=issue,
        due_date=issue + dt.timedelta(days=terms),
        project_id=erp_project_id,
        lines=pricing.lines,
        draft=entity.finance_review,
        tax_code=entity.tax_code,
        memo=f"{project.name} — {period.label}"[:255],
    )
    return PricedInvoice(
        billing_key=key,
        project_id=project.id,
        period=period.key,
        invoice=invoice,
        currency=currency,
        total=total,
        time_entry_ids=pricing.time_ids,
        expense_ids=pricing.expense_ids,
        milestone_ids=pricing.milestone_ids,
        fee_items=pricing.fee_items,
        finance_review=entity.finance_review,
        not_billed=pricing.not_billed,
    )
