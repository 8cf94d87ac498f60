"""Pure mapping between Workday Adaptive Planning's XML API and the canonical planning objects.

Outbound: a ``<call>`` document (credentials on every call, the XML API being stateless), the
``importStandardData`` body for one project's months (one row ``account|level|project|amount...`` under a
header ``Account|Level|{dimension}|MM/YYYY|...``, each amount a plain decimal string) and the
``exportData`` body for the revenue account at one level with the project dimension as a column.
Inbound: the ``<response success>`` envelope and its messages, the levels' currencies, the names of
accounts, levels, versions and dimensions, the CSV export (in ``<output>``) and the refused cells an import
reports. Parsing refuses document type and entity declarations: nothing a vendor sends is expanded.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from contracts.models import PublishFailure

__all__ = [
    "AdaptiveAnswer",
    "call_document",
    "export_body",
    "figures_from_export",
    "import_body",
    "month_of_period",
    "names_in",
    "parse_answer",
    "parse_xml",
    "period_of_month",
    "refusals",
]

_PERIOD = re.compile(r"^(0[1-9]|1[0-2])/([0-9]{4})$")
_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
# How the XML API reports a refused cell or row of an import (see sandboxes/adaptive: unverified wording).
_CELL_REFUSED = re.compile(r"^Row [0-9]+, ((?:0[1-9]|1[0-2])/[0-9]{4}): (.*)$", re.DOTALL)
_ROW_REFUSED = re.compile(r"^Row [0-9]+: (.*)$", re.DOTALL)
_MAX_DEPTH = 64


def period_of_month(month: str) -> str:
    """``YYYY-MM`` as Adaptive's period ``MM/YYYY``."""
    match = _MONTH.fullmatch(month)
    if match is None:
        raise ValueError(f"not a month: {month[:20]!r}")
    return f"{match.group(2)}/{match.group(1)}"


def month_of_period(period: str) -> str | None:
    match = _PERIOD.fullmatch(period.strip())
    return f"{match.group(2)}-{match.group(1)}" if match else None


# --- XML ------------------------------------------------------------------------------------------------


def _refuse_declaration(*_: Any) -> None:
    raise ValueError("the document declares a document type or entities")


def parse_xml(content: bytes) -> ET.Element:
    """``content`` as an element tree; raises ValueError when it is not well-formed XML, declares a document
    type or entities (refused as the parser meets them, as defusedxml does), or nests deeper than 64."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    depth = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > _MAX_DEPTH:
            raise ValueError(f"the document nests deeper than {_MAX_DEPTH} elements")
        builder.start(tag, attrs)

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(tag)

    parser.StartDoctypeDeclHandler = _refuse_declaration
    parser.EntityDeclHandler = _refuse_declaration
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(content, True)
        return builder.close()
    except (expat.ExpatError, AssertionError) as exc:
        raise ValueError(f"not well-formed XML ({exc})") from None


def call_document(
    method: str, *, caller_name: str, login: str, password: str, instance_code: str | None, body: str = ""
) -> bytes:
    """A ``<call>`` document: every XML API call names its method and caller and carries its credentials."""
    instance = f" instanceCode={quoteattr(instance_code)}" if instance_code else ""
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        f"<call method={quoteattr(method)} callerName={quoteattr(caller_name)}>"
        f"<credentials login={quoteattr(login)} password={quoteattr(password)}{instance}/>"
        f"{body}</call>"
    ).encode()


def _cell(text: str) -> str:
    if "|" in text or "\n" in text:
        raise ValueError(f"a name in an import row cannot hold '|' or a line break: {text[:40]!r}")
    return escape(text)


def import_body(
    *,
    plan_or_actuals: str,
    version: str,
    account: str,
    level: str,
    dimension: str,
    project: str,
    amounts: Mapping[str, Decimal],
) -> str:
    """``importStandardData``'s options, version and one row of the project's months (in month order)."""
    months = sorted(amounts)
    header = "|".join(["Account", "Level", _cell(dimension), *(period_of_month(month) for month in months)])
    # "f" never writes an exponent: Decimal("1E+3") goes out as "1000".
    values = [format(amounts[month], "f") for month in months]
    row = "|".join([_cell(account), _cell(level), _cell(project), *values])
    return (
        f'<importDataOptions planOrActuals="{plan_or_actuals}" allowParallel="false" moveBPtr="false"/>'
        f'<version name={quoteattr(version)} isDefault="false"/>'
        f"<rowData><header>{header}</header><rows><row>{row}</row></rows></rowData>"
    )


# The export's column naming each row's level (``exportData``'s CSV: Account Name, Account Code, Level Name,
# the dimensions asked for, then one column per period).
LEVEL_COLUMN = "Level Name"


def export_body(*, version: str, account: str, levels: Sequence[str], dimension: str) -> str:
    """``exportData`` of one account at ``levels``, the dimension as a column, each level's rows in its own
    (local) currency."""
    level_filters = "".join(
        f'<level name={quoteattr(level)} isRollup="false" includeDescendants="false"/>' for level in levels
    )
    return (
        f'<version name={quoteattr(version)} isDefault="false"/>'
        '<format useInternalCodes="true" includeUnmappedItems="false"/>'
        "<filters>"
        f'<accounts><account code={quoteattr(account)} isAssumption="false" includeDescendants="false"/>'
        "</accounts>"
        f"<levels>{level_filters}</levels>"
        "</filters>"
        f"<dimensions><dimension name={quoteattr(dimension)}/></dimensions>"
        '<rules includeZeroRows="false" includeRollupAccounts="false" includeRollupLevels="false">'
        '<currency useCorporate="false" useLocal="true"/></rules>'
    )


# --- answers --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdaptiveAnswer:
    """A ``<response>``: whether the call succeeded, its messages ``(key, text)``, its ``<output>``."""

    success: bool
    messages: list[tuple[str, str]] = field(default_factory=list)
    output: ET.Element | None = None

    def text(self, limit: int = 300) -> str:
        return "; ".join(text for _, text in self.messages)[:limit]


def parse_answer(content: bytes) -> AdaptiveAnswer:
    """The XML API's ``<response success>`` envelope; raises ValueError when ``content`` is not one."""
    root = parse_xml(content)
    if root.tag != "response":
        raise ValueError(f"the document element is {root.tag[:40]!r}, not response")
    success = (root.get("success") or "").strip().lower()
    if success not in ("true", "false"):
        raise ValueError("the response has no success attribute")
    messages = [
        (message.get("key") or "", (message.text or "").strip())
        for message in root.iterfind("messages/message")
    ]
    return AdaptiveAnswer(success=success == "true", messages=messages, output=root.find("output"))


def names_in(output: ET.Element | None, tag: str, attribute: str = "name") -> dict[str, dict[str, str]]:
    """Every ``tag`` element at any depth of ``output`` (accounts and levels nest), by ``attribute``."""
    if output is None:
        return {}
    return {element.get(attribute) or "": dict(element.attrib) for element in output.iter(tag)}


def figures_from_export(
    output: ET.Element | None, dimension: str, project: str
) -> dict[str, dict[str, Decimal]]:
    """The project's non-zero figures by level, then by month (``YYYY-MM``), from an ``exportData`` answer's
    CSV, summed over its rows (a level with none is left out). A zero is no figure: an Adaptive cell that is
    zero and one that is empty export alike. Raises ValueError when the CSV is not the export's shape."""
    text = (output.text or "") if output is not None else ""
    reader = csv.reader(io.StringIO(text.strip("\r\n"), newline=""))
    header = next(reader, None)
    if header is None:
        return {}
    header = [name.strip() for name in header]
    for column in (dimension, LEVEL_COLUMN):
        if column not in header:
            raise ValueError(f"the export has no {column!r} column")
    position, level_at = header.index(dimension), header.index(LEVEL_COLUMN)
    months = {index: month_of_period(name) for index, name in enumerate(header)}
    periods = {index: month for index, month in months.items() if month is not None}
    if not periods:
        raise ValueError("the export has no period columns")
    by_level: dict[str, dict[str, Decimal]] = {}
    for row in reader:
        if not row or len(row) <= max(position, level_at) or row[position].strip() != project:
            continue
        figures = by_level.setdefault(row[level_at].strip(), {})
        for index, month in periods.items():
            raw = row[index].strip() if index < len(row) else ""
            if not raw:
                continue
            try:
                amount = Decimal(raw)
            except InvalidOperation:
                raise ValueError(f"the export has an unusable amount for {month}") from None
            if not amount.is_finite():
                raise ValueError(f"the export has an unusable amount for {month}")
            figures[month] = figures.get(month, Decimal(0)) + amount
    kept = {
        level: {month: amount for month, amount in sorted(figures.items()) if amount != 0}
        for level, figures in by_level.items()
    }
    return {level: figures for level, figures in kept.items() if figures}


def refusals(messages: Iterable[tuple[str, str]], months: Iterable[str]) -> list[PublishFailure]:
    """The months an import refused, from its messages: ``Row n, MM/YYYY: why`` refuses one month, ``Row
    n: why`` the whole row (every month of ``months``, as each publish sends one row)."""
    failures: dict[str, PublishFailure] = {}
    for _, text in messages:
        cell = _CELL_REFUSED.fullmatch(text)
        if cell is not None:
            month = month_of_period(cell.group(1))
            if month is not None:
                failures.setdefault(month, PublishFailure(month=month, message=cell.group(2)[:300]))
            continue
        row = _ROW_REFUSED.fullmatch(text)
        if row is not None:
            for month in months:
                failures.setdefault(month, PublishFailure(month=month, message=row.group(1)[:300]))
    return [failures[month] for month in sorted(failures)]
