"""One Adaptive Planning sandbox instance: its state and the XML API methods it answers.

Each method takes the parsed ``<call>`` element and returns a `Result` (``success``, messages, the
``<output>`` content); `sandboxes.adaptive.app` parses the request and renders the response. Behaviour and
the sources it follows are listed in the app module's docstring.
"""

from __future__ import annotations

import csv
import io
import re
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeAlias
from xml.sax.saxutils import quoteattr

import msgspec
from litestar.di import NamedDependency

from sandboxes.adaptive.data import (
    ACCOUNTS,
    CORPORATE_CURRENCY,
    DEV_LOGIN,
    DEV_PASSWORD,
    INSTANCE_CODE,
    LEVELS,
    PROJECT_DIMENSION,
    RATES_TO_CORPORATE,
    TIME_END,
    TIME_START,
    VERSIONS,
    AccountSpec,
    CellKey,
    LevelSpec,
    VersionSpec,
    seed_cells,
)
from sandboxes.faults import FaultInjector
from sandboxes.request_log import RequestLogEntry

__all__ = ["AdaptiveSandbox", "AdaptiveSandboxSettings", "CallRefused", "Result", "failure", "render"]

_PERIOD = re.compile(r"^(0[1-9]|1[0-2])/([0-9]{4})$")
_PLAIN_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


class AdaptiveSandboxSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How the sandbox behaves; the defaults match a fresh instance."""

    users: tuple[tuple[str, str], ...] = ()
    """Extra ``(login, password)`` pairs; the development user (`data.DEV_LOGIN`) is always accepted."""
    api_versions: tuple[int, ...] = (38, 39, 40)
    """The API versions served: v40 is current; a version stays supported a year after its successor."""


@dataclass(slots=True)
class Result:
    success: bool
    messages: list[tuple[str, str]] = field(default_factory=list)  # (key, text)
    output: str = ""  # XML (already escaped) placed inside <output>


class CallRefused(Exception):
    def __init__(self, key: str, text: str) -> None:
        super().__init__(text)
        self.key = key
        self.text = text


class _DurableState(msgspec.Struct, kw_only=True):
    """What a restart keeps (`sandboxes.persistence`): the cells and the Project dimension's values."""

    cells: list[tuple[CellKey, str]]
    project_values: list[str]


def _month(period: str) -> str | None:
    """``MM/YYYY`` (Adaptive's period in import headers and timeSpans) as ``YYYY-MM``; None if malformed."""
    match = _PERIOD.fullmatch(period.strip())
    return f"{match.group(2)}-{match.group(1)}" if match else None


def _period(month: str) -> str:
    return f"{month[5:7]}/{month[0:4]}"


def _all_months() -> list[str]:
    months = []
    year, month = TIME_START
    while (year, month) <= TIME_END:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


_MONTHS = _all_months()
_MONTH_SET = frozenset(_MONTHS)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


class AdaptiveSandbox:
    """All mutable state of one sandbox instance: the cells, the Project dimension's values, faults."""

    durable_type = _DurableState

    def __init__(self, settings: AdaptiveSandboxSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = FaultInjector()
        self.request_log: deque[RequestLogEntry] = deque(maxlen=100)
        self.users = {DEV_LOGIN: DEV_PASSWORD, **dict(settings.users)}
        self.versions: dict[str, VersionSpec] = {version.name: version for version in VERSIONS}
        self.accounts: dict[str, AccountSpec] = {account.code: account for account in ACCOUNTS}
        self.levels: dict[str, LevelSpec] = {level.name: level for level in LEVELS}
        self.cells: dict[CellKey, str] = {}
        self.project_values: list[str] = []
        self.calls = 0
        self.reset()

    def reset(self) -> None:
        """Reseed the instance and forget the log, the counters and the faults."""
        self.faults.clear()
        self.request_log.clear()
        self.calls = 0
        self.cells = seed_cells()
        self.project_values = sorted({key[3] for key in self.cells if key[3]})

    def durable_state(self) -> _DurableState:
        return _DurableState(cells=list(self.cells.items()), project_values=list(self.project_values))

    def restore_durable_state(self, state: _DurableState) -> None:
        self.cells = {tuple(key): value for key, value in state.cells}  # type: ignore[misc]
        self.project_values = list(state.project_values)

    # -- the call --------------------------------------------------------------------------------------

    def authenticate(self, call: ET.Element) -> str:
        """The login of the call's credentials; raises `CallRefused` when they are missing or wrong."""
        credentials = call.find("credentials")
        if credentials is None:
            raise CallRefused("error-authentication-failure", "Missing credentials element")
        login = credentials.get("login") or ""
        password = credentials.get("password") or ""
        if not login or self.users.get(login) != password:
            # The same words for an unknown login and a wrong password: the answer tells nobody which.
            raise CallRefused("error-authentication-failure", "Invalid login or password")
        instance = credentials.get("instanceCode")
        if instance is not None and instance != INSTANCE_CODE:
            raise CallRefused("error-invalid-instance", f"Invalid instance code: {instance}")
        return login

    def dispatch(self, method: str, call: ET.Element) -> Result:
        handlers: dict[str, Callable[[ET.Element], Result]] = {
            "exportVersions": self.export_versions,
            "exportAccounts": self.export_accounts,
            "exportLevels": self.export_levels,
            "exportDimensions": self.export_dimensions,
            "importStandardData": self.import_standard_data,
            "exportData": self.export_data,
        }
        handler = handlers.get(method)
        if handler is None:
            return Result(False, [("error-invalid-method", f"Unknown API method: {method}")])
        self.calls += 1
        try:
            return handler(call)
        except CallRefused as failed:
            return Result(False, [(failed.key, failed.text)])

    # -- metadata --------------------------------------------------------------------------------------

    def export_versions(self, call: ET.Element) -> Result:
        items = "".join(
            f'<version id="{v.id}" name={quoteattr(v.name)} shortName={quoteattr(v.name)} '
            f'type="{v.type}" isVirtual="false" isDefaultVersion="{str(v.is_default).lower()}" '
            f'isLocked="{str(v.is_locked).lower()}" hasAuditTrail="false" '
            f'enabledForWorkflow="false" isImportable="{str(not v.is_locked).lower()}"/>'
            for v in self.versions.values()
        )
        return Result(True, output=f"<versions>{items}</versions>")

    def export_accounts(self, call: ET.Element) -> Result:
        def render(parent: str | None) -> str:
            parts = []
            for account in self.accounts.values():
                if account.parent != parent:
                    continue
                attrs = (
                    f'id="{account.id}" code={quoteattr(account.code)} name={quoteattr(account.name)} '
                    f'accountTypeCode="{account.account_type}" isAssumption="false" '
                    f'dataEntryType="Standard" timeStratum="month"'
                )
                children = render(account.code)
                parts.append(f"<account {attrs}>{children}</account>" if children else f"<account {attrs}/>")
            return "".join(parts)

        return Result(True, output=f"<accounts>{render(None)}</accounts>")

    def export_levels(self, call: ET.Element) -> Result:
        def render(parent: str | None) -> str:
            parts = []
            for level in self.levels.values():
                if level.parent != parent:
                    continue
                attrs = (
                    f'id="{level.id}" name={quoteattr(level.name)} shortName={quoteattr(level.name)} '
                    f'currency="{level.currency}" isElimination="false" isLinked="false"'
                )
                children = render(level.name)
                parts.append(f"<level {attrs}>{children}</level>" if children else f"<level {attrs}/>")
            return "".join(parts)

        return Result(True, output=f"<levels>{render(None)}</levels>")

    def export_dimensions(self, call: ET.Element) -> Result:
        values = "".join(
            f'<dimensionValue id="{100 + index}" name={quoteattr(name)} code={quoteattr(name)} '
            f'description=""/>'
            for index, name in enumerate(self.project_values)
        )
        dimension = (
            f'<dimension id="7" name={quoteattr(PROJECT_DIMENSION)} shortName={quoteattr(PROJECT_DIMENSION)}'
            f' autoCreate="true" listDimension="false" keepSorted="true" useOnLevels="false">'
            f"{values}</dimension>"
        )
        return Result(True, output=f"<dimensions>{dimension}</dimensions>")

    # -- lookups ---------------------------------------------------------------------------------------

    def _version(self, call: ET.Element) -> VersionSpec:
        element = call.find("version")
        name = (element.get("name") if element is not None else None) or ""
        if element is not None and _true(element.get("isDefault")) and not name:
            return next(v for v in self.versions.values() if v.is_default)
        found = self.versions.get(name)
        if found is None:
            raise CallRefused("error-invalid-version", f"Version not found: {name or '(none given)'}")
        return found

    def _account_codes(self, code: str, descendants: bool) -> list[str]:
        if code not in self.accounts:
            raise CallRefused("error-invalid-account", f"Account not found: {code}")
        codes = [code]
        if descendants:
            for account in self.accounts.values():
                if account.parent == code:
                    codes += self._account_codes(account.code, True)
        return codes

    def _level_names(self, name: str, descendants: bool) -> list[str]:
        if name not in self.levels:
            raise CallRefused("error-invalid-level", f"Level not found: {name}")
        names = [name]
        if descendants:
            for level in self.levels.values():
                if level.parent == name:
                    names += self._level_names(level.name, True)
        return names

    # -- import ----------------------------------------------------------------------------------------

    def import_standard_data(self, call: ET.Element) -> Result:
        options = call.find("importDataOptions")
        plan_or_actuals = options.get("planOrActuals") if options is not None else None
        if plan_or_actuals not in ("Plan", "Actuals"):
            raise CallRefused(
                "error-invalid-import-options", "importDataOptions planOrActuals must be Plan or Actuals"
            )
        version = self._version(call)
        wanted_type = "ACTUALS" if plan_or_actuals == "Actuals" else "PLANNING"
        if version.type != wanted_type:
            raise CallRefused(
                "error-invalid-version",
                f"Version {version.name} is not a {plan_or_actuals.lower()} version",
            )
        if version.is_locked:
            raise CallRefused(
                "error-version-locked", f"Version {version.name} is locked and cannot be imported into"
            )
        row_data = call.find("rowData")
        header_element = row_data.find("header") if row_data is not None else None
        if row_data is None or header_element is None or not (header_element.text or "").strip():
            raise CallRefused("error-invalid-row-data", "rowData must contain a header")
        header = [column.strip() for column in (header_element.text or "").split("|")]
        if header[:2] != ["Account", "Level"]:
            raise CallRefused("error-invalid-row-data", "The header must begin with Account|Level")
        dimensions: list[str] = []
        periods: list[tuple[int, str]] = []  # (column index, the header's text)
        for index, column in enumerate(header[2:], start=2):
            if _PERIOD.fullmatch(column):
                periods.append((index, column))
            elif column == PROJECT_DIMENSION and not periods:
                dimensions.append(column)
            else:
                raise CallRefused("error-invalid-row-data", f"Invalid column in header: {column}")
        rows_element = row_data.find("rows")
        rows = [] if rows_element is None else [(row.text or "") for row in rows_element.findall("row")]
        messages: list[tuple[str, str]] = []
        imported_cells = imported_rows = 0
        for number, text in enumerate(rows, start=1):
            values = text.split("|")
            if len(values) != len(header):
                messages.append(
                    ("import-row-error", f"Row {number}: expected {len(header)} values, found {len(values)}")
                )
                continue
            account, level = values[0].strip(), values[1].strip()
            project = values[2].strip() if dimensions else ""
            if account not in self.accounts or self.accounts[account].is_rollup:
                messages.append(
                    ("import-row-error", f"Row {number}: Account not found or not importable: {account}")
                )
                continue
            if level not in self.levels or level == "Company":
                messages.append(("import-row-error", f"Row {number}: Level not found or a rollup: {level}"))
                continue
            row_cells = 0
            for index, period in periods:
                raw = values[index].strip()
                if not raw:
                    continue  # a blank leaves the cell as it is
                month = _month(period)
                if month is None or month not in _MONTH_SET:
                    messages.append(("import-cell-error", f"Row {number}, {period}: time period not found"))
                    continue
                if not _PLAIN_NUMBER.fullmatch(raw):
                    messages.append(
                        ("import-cell-error", f"Row {number}, {period}: invalid number {raw[:30]!r}")
                    )
                    continue
                if project and project not in self.project_values:
                    # The Project dimension creates its values on import (autoCreate="true").
                    self.project_values.append(project)
                    self.project_values.sort()
                key = (version.name, account, level, project, month)
                if Decimal(raw) == 0:
                    self.cells.pop(key, None)  # a zero empties the cell: exports show 0 either way
                else:
                    self.cells[key] = raw
                row_cells += 1
            imported_cells += row_cells
            imported_rows += 1 if row_cells else 0
        if imported_cells == 0 and messages:
            return Result(False, [("import-failed", "No data was imported"), *messages])
        summary = (
            "import-success",
            f"Data import successful. Rows imported: {imported_rows}, cells: {imported_cells}",
        )
        return Result(True, [summary, *messages])

    # -- export ----------------------------------------------------------------------------------------

    def export_data(self, call: ET.Element) -> Result:
        version = self._version(call)
        filters = call.find("filters")
        accounts: list[str] = []
        levels: list[str] = []
        dimension_values: dict[str, set[str]] = {}
        months = list(_MONTHS)
        if filters is not None:
            for element in filters.iterfind("accounts/account"):
                code = element.get("code") or ""
                accounts += self._account_codes(code, _true(element.get("includeDescendants")))
            for element in filters.iterfind("levels/level"):
                name = element.get("name") or ""
                levels += self._level_names(name, _true(element.get("includeDescendants")))
            for element in filters.iterfind("dimensionValues/dimensionValue"):
                dim, name = element.get("dimName") or "", element.get("name") or ""
                if dim != PROJECT_DIMENSION:
                    raise CallRefused("error-invalid-dimension", f"Dimension not found: {dim}")
                if name not in self.project_values:
                    raise CallRefused(
                        "error-invalid-dimension-value", f"Dimension value not found: {dim}: {name}"
                    )
                dimension_values.setdefault(dim, set()).add(name)
            span = filters.find("timeSpan")
            if span is not None:
                start, end = _month(span.get("start") or ""), _month(span.get("end") or "")
                if (
                    start is None
                    or end is None
                    or start not in _MONTH_SET
                    or end not in _MONTH_SET
                    or start > end
                ):
                    raise CallRefused(
                        "error-invalid-time-span",
                        "Invalid timeSpan: start and end are MM/YYYY periods of the calendar",
                    )
                months = [month for month in _MONTHS if start <= month <= end]
        accounts = accounts or [code for code, account in self.accounts.items() if not account.is_rollup]
        levels = levels or [name for name in self.levels if name != "Company"]
        columns: list[str] = []
        dims = call.find("dimensions")
        if dims is not None:
            for element in dims.iterfind("dimension"):
                name = element.get("name") or ""
                if name != PROJECT_DIMENSION:
                    raise CallRefused("error-invalid-dimension", f"Dimension not found: {name}")
                columns.append(name)
        rules = call.find("rules")
        include_zero_rows = rules is not None and _true(rules.get("includeZeroRows"))
        currency = rules.find("currency") if rules is not None else None
        corporate = currency is not None and _true(currency.get("useCorporate"))
        override = currency.get("override") if currency is not None else None
        if override and override not in RATES_TO_CORPORATE:
            raise CallRefused("error-invalid-currency", f"Currency not found: {override}")
        # Sum the cells into rows of (account, level, [project]), one column per month.
        rows: dict[tuple[str, str, str], dict[str, Decimal]] = {}
        for (cell_version, account, level, project, month), amount in self.cells.items():
            if cell_version != version.name or account not in accounts or level not in levels:
                continue
            if dimension_values and project not in dimension_values.get(PROJECT_DIMENSION, set()):
                continue
            if month not in months:
                continue
            row = rows.setdefault((account, level, project if columns else ""), {})
            row[month] = row.get(month, Decimal(0)) + Decimal(amount)
        if include_zero_rows:
            for account in accounts:
                for level in levels:
                    if not columns:
                        rows.setdefault((account, level, ""), {})
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ["Account Name", "Account Code", "Level Name", *columns, *(_period(m) for m in months)]
        )
        for (account, level, project), amounts in sorted(rows.items()):
            target = override or (CORPORATE_CURRENCY if corporate else self.levels[level].currency)
            rate = Decimal(RATES_TO_CORPORATE[self.levels[level].currency]) / Decimal(
                RATES_TO_CORPORATE[target]
            )
            values = [_amount(amounts.get(month, Decimal(0)) * rate) for month in months]
            prefix = [self.accounts[account].name, account, level, *([project] if columns else [])]
            writer.writerow([*prefix, *values])
        return Result(True, output=_cdata(out.getvalue()))

    # -- admin -----------------------------------------------------------------------------------------

    def stored(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``GET /__sandbox/records/{type}``'s stores."""
        cells = {
            "|".join(key): {
                "version": key[0],
                "account": key[1],
                "level": key[2],
                "project": key[3],
                "month": key[4],
                "amount": amount,
            }
            for key, amount in sorted(self.cells.items())
        }
        values = {name: {"dimension": PROJECT_DIMENSION, "name": name} for name in self.project_values}
        return {"cells": cells, "dimension_values": values}


def _amount(value: Decimal) -> str:
    """A plain decimal (no exponent), at least two places, as Adaptive's export writes currency values."""
    cents = value.quantize(Decimal("0.01"))
    return format(cents if cents == value else value, "f")


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render(result: Result) -> bytes:
    """The ``<response>`` document for ``result`` (the XML API's envelope)."""
    messages = "".join(
        f"<message key={quoteattr(key)}>{_escape(text)}</message>" for key, text in result.messages
    )
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        f'<response success="{str(result.success).lower()}">'
        + (f"<messages>{messages}</messages>" if messages else "")
        + (f"<output>{result.output}</output>" if result.output else "")
        + "</response>"
    )
    return body.encode("utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def failure(key: str, text: str) -> bytes:
    return render(Result(False, [(key, text)]))


# Handlers receive the instance through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[AdaptiveSandbox]
