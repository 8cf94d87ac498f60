"""Pure mapping between Anaplan's wire shapes and the canonical planning objects.

Outbound: a baseline or actuals become the CSV the model's import reads (``project, month, currency,
version, amount, reference``: one row per month, the month as ``YYYY-MM``, the amount as a plain decimal
string). Inbound: Anaplan's token, list, task and failure-dump shapes, and the forecast export's CSV
(``project, month, currency, amount, source``). Vendor structs tolerate unknown fields; what the canonical
side needs is checked here and reported as ``ValueError``/``msgspec`` errors for the adapter to map.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Literal, TypeVar

import msgspec

from contracts.models import (
    Forecast,
    ForecastMonth,
    ForecastSource,
    PublishFailure,
    PublishResult,
    RevenueActuals,
    RevenueBaseline,
)

__all__ = [
    "EXPORT_COLUMNS",
    "IMPORT_COLUMNS",
    "AnaplanAction",
    "AnaplanChunkList",
    "AnaplanExportList",
    "AnaplanImportList",
    "AnaplanListing",
    "AnaplanTask",
    "AnaplanTaskEnvelope",
    "AnaplanTaskResult",
    "AnaplanTokenResponse",
    "Paging",
    "Version",
    "decode",
    "error_message",
    "failures_from_dump",
    "forecast_from_export",
    "publish_result",
    "result_summary",
    "revenue_csv",
    "row_counts",
]

Version = Literal["baseline", "actual"]
_T = TypeVar("_T")
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
IMPORT_COLUMNS = ("project", "month", "currency", "version", "amount", "reference")
EXPORT_COLUMNS = ("project", "month", "currency", "amount", "source")

# --- outbound -------------------------------------------------------------------------------------------


def revenue_csv(
    project_id: str, version: Version, plan: RevenueBaseline | RevenueActuals, clear: Iterable[str] = ()
) -> bytes:
    """The import file for one project's plan: a header row, then one row per month in month order, the
    entries of a month added up (exactly, as decimals). Each month of ``clear`` the plan does not have
    gets an explicit zero: an Anaplan import writes only the cells its rows name, so a month the model
    holds from an earlier publish would otherwise keep its old figure."""
    totals: dict[str, Decimal] = {}
    for entry in plan.months:
        totals[entry.month] = totals.get(entry.month, Decimal(0)) + entry.amount
    for month in clear:
        totals.setdefault(month, Decimal(0))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(IMPORT_COLUMNS)
    for month in sorted(totals):
        # "f" never writes an exponent: Decimal("1E+3") goes out as "1000", which any import parses.
        amount = format(totals[month], "f")
        writer.writerow([project_id, month, plan.currency, version, amount, plan.external_key])
    return out.getvalue().encode("utf-8")


# --- vendor shapes --------------------------------------------------------------------------------------


class _Vendor(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """Anaplan's JSON: camelCase names, unknown fields tolerated."""


class TokenInfo(_Vendor, frozen=True):
    token_value: str
    expires_at: int | None = None  # Unix time in milliseconds
    token_id: str | None = None


class AnaplanTokenResponse(_Vendor, frozen=True):
    status: str | None = None
    status_message: str | None = None
    token_info: TokenInfo | None = None


class Paging(_Vendor, frozen=True):
    current_page_size: int = 0
    offset: int = 0
    total_size: int = 0


class _Meta(_Vendor, frozen=True):
    paging: Paging | None = None


class AnaplanAction(_Vendor, frozen=True):
    id: str | int
    name: str
    import_data_source_id: str | int | None = None

    @property
    def key(self) -> str:
        return str(self.id)

    @property
    def source(self) -> str | None:
        return None if self.import_data_source_id in (None, "") else str(self.import_data_source_id)


class AnaplanListing(_Vendor, frozen=True):
    """A page of a list: ``meta.paging`` says where it stands."""

    meta: _Meta = _Meta()


class AnaplanImportList(AnaplanListing, frozen=True):
    imports: list[AnaplanAction] = []


class AnaplanExportList(AnaplanListing, frozen=True):
    exports: list[AnaplanAction] = []


class _Chunk(_Vendor, frozen=True):
    id: str | int


class AnaplanChunkList(AnaplanListing, frozen=True):
    chunks: list[_Chunk] = []

    @property
    def ids(self) -> list[str]:
        return [str(chunk.id) for chunk in self.chunks]


class _Detail(_Vendor, frozen=True):
    local_message_text: str | None = None
    occurrences: int = 0
    type: str | None = None
    values: list[str | None] = []


class AnaplanTaskResult(_Vendor, frozen=True):
    successful: bool
    failure_dump_available: bool = False
    object_id: str | int | None = None
    details: list[_Detail] = []


class AnaplanTask(_Vendor, frozen=True):
    task_id: str
    task_state: str
    progress: float | None = None
    current_step: str | None = None
    result: AnaplanTaskResult | None = None


class AnaplanTaskEnvelope(_Vendor, frozen=True):
    task: AnaplanTask


class _Status(_Vendor, frozen=True):
    code: int | None = None
    message: str | None = None


class _ErrorBody(_Vendor, frozen=True):
    status: _Status | str | None = None
    status_message: str | None = None


def decode(content: bytes, kind: type[_T]) -> _T:
    """``content`` as Anaplan's ``kind``; raises ``msgspec.DecodeError``/``ValidationError``."""
    return msgspec.json.decode(content, type=kind)


def error_message(content: bytes) -> str | None:
    """The message of an Anaplan error body (``{"status": {"message"}}`` or the auth service's
    ``{"statusMessage"}``), if the body is one."""
    try:
        body = msgspec.json.decode(content, type=_ErrorBody)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if isinstance(body.status, _Status) and body.status.message:
        return body.status.message[:300]
    return body.status_message[:300] if body.status_message else None


# --- task results ---------------------------------------------------------------------------------------


def _pairs(values: Iterable[str | None]) -> dict[str, str]:
    """Anaplan's detail ``values`` alternate name and value: ``["successRowCount", "2", ...]``."""
    items = list(values)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2) if items[i] is not None}


def row_counts(result: AnaplanTaskResult) -> tuple[int, int] | None:
    """``(loaded, failed)`` rows over every detail that counts rows; None when no detail does (the task
    failed before reading rows)."""
    loaded = failed = 0
    found = False
    for detail in result.details:
        pairs = _pairs(detail.values)
        if "successRowCount" not in pairs and "failedCount" not in pairs:
            continue
        found = True
        try:
            loaded += int(pairs.get("successRowCount", "0"))
            failed += int(pairs.get("failedCount", "0"))
        except ValueError:
            raise ValueError("a task detail's row count is not a number") from None
    return (loaded, failed) if found else None


def result_summary(result: AnaplanTaskResult) -> str:
    """The task's own words on what happened, for an error message."""
    texts = [detail.local_message_text.strip() for detail in result.details if detail.local_message_text]
    return "; ".join(texts)[:500] or ("successful" if result.successful else "unsuccessful, with no details")


def failures_from_dump(content: bytes) -> list[PublishFailure]:
    """The refused rows of an import's failure dump: the file's columns between ``_Line_`` and the
    ``_Error_n_`` columns."""
    reader = csv.DictReader(io.StringIO(content.decode("utf-8-sig", "replace"), newline=""))
    failures: list[PublishFailure] = []
    for row in reader:
        errors = [value for name, value in row.items() if name and name.startswith("_Error_") and value]
        month = (row.get("month") or "").strip() or None
        failures.append(PublishFailure(month=month, message="; ".join(errors)[:300] or "refused"))
    return failures


def publish_result(task_id: str, result: AnaplanTaskResult, failures: list[PublishFailure]) -> PublishResult:
    counts = row_counts(result)
    loaded, failed = counts if counts is not None else (0, len(failures))
    return PublishResult(task_id=task_id, rows_loaded=loaded, rows_failed=failed, failures=failures)


# --- the forecast export --------------------------------------------------------------------------------


def forecast_from_export(content: bytes, project_id: str) -> Forecast | None:
    """The project's forecast from the "Export Forecast" file; None when the file has no row for it.
    Raises ``ValueError`` when the file is not the export's shape."""
    reader = csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline=""))
    missing = [name for name in EXPORT_COLUMNS if name not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"the forecast export has no column {', '.join(missing)}")
    months: dict[str, ForecastMonth] = {}
    currencies: set[str] = set()
    for row in reader:
        if (row["project"] or "").strip() != project_id:
            continue
        month = (row["month"] or "").strip()
        if not _MONTH.fullmatch(month):
            raise ValueError(f"the forecast export has a row with no usable month: {month[:20]!r}")
        try:
            amount = Decimal((row["amount"] or "").strip())
            source = ForecastSource((row["source"] or "").strip().lower())
        except (InvalidOperation, ValueError):
            raise ValueError(f"the forecast export has an unusable row for {month or 'a month'}") from None
        if not amount.is_finite():
            raise ValueError(f"the forecast export has an unusable amount for {month}")
        currencies.add((row["currency"] or "").strip())
        months[month] = ForecastMonth(month=month, amount=amount, source=source)
    if not months:
        return None
    if len(currencies) != 1:
        raise ValueError(f"the forecast export has several currencies for the project: {sorted(currencies)}")
    ordered = [months[month] for month in sorted(months)]
    actual_months = [entry.month for entry in ordered if entry.source is ForecastSource.ACTUAL]
    return Forecast(
        project_id=project_id,
        currency=currencies.pop(),
        months=ordered,
        as_of=actual_months[-1] if actual_months else None,
    )
