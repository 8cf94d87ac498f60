"""NetSuite's two query languages: SuiteQL, run on SQLite through sqlglot, and the record-list ``q`` filter.

**SuiteQL** (``POST query/v1/suiteql``) is Oracle SQL over NetSuite's tables, so the sandbox does not parse it
by hand: sqlglot (https://sqlglot.com) reads the query as Oracle SQL, the sandbox checks the tree against the
tables and fields it knows (answering with NetSuite's messages), rewrites what SQLite lacks, and SQLite runs
it over an in-memory copy of the records (`SuiteQlDatabase`, rebuilt when the records change). What this
gives: joins, subqueries, GROUP BY with aggregates, CASE, arithmetic, DISTINCT, ``TOP n``,
``FETCH FIRST n ROWS ONLY`` and ``ROWNUM <= n``; Oracle's NULL ordering (NULLs largest) and ``''`` as NULL.
Oracle's functions NetSuite allows are SQLite user functions here: ``NVL``/``COALESCE``, ``UPPER``/``LOWER``
(Unicode), ``TO_CHAR``, ``TO_DATE``, ``TO_TIMESTAMP`` (Oracle format models: ``YYYY MM DD HH24 HH MI SS AM``
and quoted text), ``TO_NUMBER`` and ``BUILTIN.DF`` (a list or record field's display value, e.g. the
customer's name for ``entity``; https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/article_1029114613.html).
Any other function is refused by name.

Values come back the way NetSuite's REST SuiteQL does: every value a string, NULLs left out, numbers in
Oracle's form (``.5``), booleans ``T``/``F``, and dates and datetimes in the account's date format
(``3/2/2026``; use ``TO_CHAR`` for the time). Dates and times are the account's: a timestamp is held as UTC
and shown, compared and parsed (``TO_DATE``, ``TO_TIMESTAMP``, date strings compared with a date) in the
account's time zone (`ACCOUNT_TIME_ZONE`), the way NetSuite's SuiteQL reads them in the company's (or user's)
time zone preference. String comparisons and LIKE are case-sensitive, as in NetSuite.

**Record filters** (``GET record/v1/{type}?q=``): ``field OPERATOR [value]`` conditions joined by AND / OR
(AND binds tighter; no parentheses), with NetSuite's operators per field type: ``IS``, ``CONTAIN``,
``START_WITH``, ``END_WITH``, ``EMPTY``, ``EQUAL``, ``GREATER``, ``GREATER_OR_EQUAL``, ``LESS``,
``LESS_OR_EQUAL``, ``BETWEEN``, ``BETWEEN_INCLUSIVE``, ``ANY_OF``, ``AFTER``, ``BEFORE``, ``ON``,
``ON_OR_AFTER``, ``ON_OR_BEFORE``, ``WITHIN``, each also as ``..._NOT``. Values are bare words,
double-quoted strings or ``[v1, v2]`` lists; dates are ISO (``2026-03-01``, ``2026-03-01T10:00:00Z``) or
the account format (``3/1/2026``).

`build_tables` exposes the sandbox's records as the SuiteQL tables NetSuite has (``customer``,
``transaction`` with ``type`` ``CustInvc``/``CustPymt``/``SalesOrd``, ``transactionline``, ``job``,
``timebill`` ...).
"""

from __future__ import annotations

import functools
import re
import sqlite3
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp
from sqlglot.dialects.oracle import Oracle
from sqlglot.errors import OptimizeError, ParseError, SqlglotError, TokenError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from sandboxes.netsuite.data import ACCOUNT_TIME_ZONE, FieldSpec, Record, RecordType, ref_name
from sandboxes.query_language import QueryError, compare_values

__all__ = [
    "ColumnType",
    "CompiledQuery",
    "RecordFilter",
    "RecordQueryError",
    "SuiteQlDatabase",
    "SuiteQlError",
    "Table",
    "build_tables",
    "compile_record_query",
    "compile_suiteql",
    "format_account_date",
    "format_number",
    "parse_account_date",
]

ColumnType = Literal["integer", "number", "text", "date", "datetime"]
Row = Mapping[str, Any]

# The account's time zone: SuiteQL shows and reads dates and times in it.
ACCOUNT_ZONE = ZoneInfo(ACCOUNT_TIME_ZONE)


class SuiteQlError(QueryError):
    """A query NetSuite would reject; `message` says why, never with a stack trace."""


class RecordQueryError(QueryError):
    """A ``q`` filter NetSuite would reject."""


@dataclass(frozen=True, slots=True)
class Table:
    """A SuiteQL table: typed columns in their natural order and the rows (column -> Python value).

    `display` maps a column to how ``BUILTIN.DF`` shows its value (a row's value, then the row itself)."""

    name: str
    columns: Mapping[str, ColumnType]
    rows: Sequence[Row]
    display: Mapping[str, Callable[[Any, Row], str | None]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Dates in the account's format and time zone
# ---------------------------------------------------------------------------------------------------------

_ACCOUNT_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def format_account_date(value: date) -> str:
    """A date in the account's date format, NetSuite's default ``M/D/YYYY``."""
    return f"{value.month}/{value.day}/{value.year}"


def parse_account_date(text: str) -> date | datetime | None:
    """Parse ``M/D/YYYY``, ``YYYY-MM-DD`` or an ISO datetime (naive means UTC); None if it is none of them."""
    text = text.strip()
    if match := _ACCOUNT_DATE.fullmatch(text):
        month, day, year = (int(part) for part in match.groups())
        try:
            return date(year, month, day)
        except ValueError:
            return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?", text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return None


def _as_datetime(value: date) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


# In SQLite a date or timestamp is UTC text of fixed width, so text order is time order. A date (a calendar
# day in the account, like trandate) is the account's midnight of that day.


def _store(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def _store_local(wall_clock: datetime) -> str:
    """A wall-clock time in the account's zone, stored; in the hour a DST change repeats, the earlier one."""
    return _store(wall_clock.replace(tzinfo=ACCOUNT_ZONE, fold=0))


@functools.lru_cache(maxsize=4096)
def _store_day(day: date) -> str:
    return _store_local(datetime(day.year, day.month, day.day))


def _local(stored: str) -> datetime:
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(ACCOUNT_ZONE)


def _store_text(text: str) -> str | None:
    """A date string as Oracle reads it against a date: the account's format or ISO; naive is account time."""
    parsed = parse_account_date(text)
    if parsed is None:
        return None
    if isinstance(parsed, datetime):
        # parse_account_date reads a naive ISO time as UTC (the q filter's rule); SuiteQL reads it locally.
        if re.search(r"(Z|[+-]\d{2}:?\d{2})$", text.strip()):
            return _store(parsed)
        return _store_local(parsed.replace(tzinfo=None))
    return _store_day(parsed)


# ---------------------------------------------------------------------------------------------------------
# Numbers and Oracle format models
# ---------------------------------------------------------------------------------------------------------


def format_number(value: Any) -> str:
    """A number as Oracle's TO_CHAR writes it: no exponent, no trailing zeros, ``.5`` for one half.

    A float (SQLite's REAL, e.g. a SUM of amounts) is read to 15 significant digits, so binary noise such as
    ``0.30000000000000004`` does not show: Oracle's NUMBER is decimal."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, int):
        return str(value)
    number = value if isinstance(value, Decimal) else Decimal(f"{value:.15g}")
    text = format(number.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text.startswith("0."):
        text = text[1:]
    elif text.startswith("-0."):
        text = "-" + text[2:]
    return "0" if text in ("", "-0") else text


_FORMAT_ELEMENT = re.compile(r'"[^"]*"|YYYY|RRRR|YY|MM|DD|HH24|HH12|HH|MI|SS|AM|PM|[-/,.;: ]', re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def _format_model(model: str) -> tuple[str, ...]:
    elements: list[str] = []
    pos = 0
    while pos < len(model):
        match = _FORMAT_ELEMENT.match(model, pos)
        if match is None:
            raise SuiteQlError(f"Unsupported date format model '{model}'.")
        element = match.group()
        elements.append(element if element.startswith('"') else element.upper())
        pos = match.end()
    return tuple(elements)


def _to_char(value: datetime, model: str) -> str:
    parts: list[str] = []
    for element in _format_model(model):
        if element.startswith('"'):
            parts.append(element[1:-1])
        elif element in ("YYYY", "RRRR"):
            parts.append(f"{value.year:04d}")
        elif element == "YY":
            parts.append(f"{value.year % 100:02d}")
        elif element == "MM":
            parts.append(f"{value.month:02d}")
        elif element == "DD":
            parts.append(f"{value.day:02d}")
        elif element == "HH24":
            parts.append(f"{value.hour:02d}")
        elif element in ("HH", "HH12"):
            parts.append(f"{(value.hour % 12) or 12:02d}")
        elif element == "MI":
            parts.append(f"{value.minute:02d}")
        elif element == "SS":
            parts.append(f"{value.second:02d}")
        elif element in ("AM", "PM"):
            parts.append("AM" if value.hour < 12 else "PM")
        else:
            parts.append(element)
    return "".join(parts)


_PARSE_PATTERNS = {
    "YYYY": r"(?P<year>\d{4})",
    "RRRR": r"(?P<year>\d{4})",
    "YY": r"(?P<yy>\d{2})",
    "MM": r"(?P<month>\d{1,2})",
    "DD": r"(?P<day>\d{1,2})",
    "HH24": r"(?P<hour>\d{1,2})",
    "HH": r"(?P<hour12>\d{1,2})",
    "HH12": r"(?P<hour12>\d{1,2})",
    "MI": r"(?P<minute>\d{1,2})",
    "SS": r"(?P<second>\d{1,2})",
    "AM": r"(?P<meridian>AM|PM)",
    "PM": r"(?P<meridian>AM|PM)",
}


def _parse_with_model(text: str, model: str) -> tuple[datetime, bool]:
    """Parse `text` with an Oracle format model: the wall-clock time read and whether the model has a time."""
    pattern = []
    for element in _format_model(model):
        if element.startswith('"'):
            pattern.append(re.escape(element[1:-1]))
        else:
            pattern.append(_PARSE_PATTERNS.get(element, re.escape(element)))
    match = re.fullmatch("".join(pattern), text.strip(), re.IGNORECASE)
    if match is None:
        raise SuiteQlError(f"The value '{text}' does not match the format '{model}'.")
    parts = {key: value for key, value in match.groupdict().items() if value is not None}
    year = int(parts["year"]) if "year" in parts else 2000 + int(parts.get("yy", "0"))
    hour = int(parts.get("hour", "0"))
    if "hour12" in parts:
        hour = int(parts["hour12"]) % 12 + (12 if parts.get("meridian", "AM").upper() == "PM" else 0)
    try:
        moment = datetime(
            year,
            int(parts.get("month", "1")),
            int(parts.get("day", "1")),
            hour,
            int(parts.get("minute", "0")),
            int(parts.get("second", "0")),
        )
    except ValueError:
        raise SuiteQlError(f"The value '{text}' is not a valid date.") from None
    has_time = any(key in parts for key in ("hour", "hour12", "minute", "second"))
    return moment, has_time


# ---------------------------------------------------------------------------------------------------------
# SuiteQL: sqlglot reads it, the sandbox checks and rewrites the tree, SQLite runs it
# ---------------------------------------------------------------------------------------------------------

_SQLITE_TYPES: Mapping[ColumnType, str] = {
    "integer": "INTEGER",
    "number": "REAL",
    "text": "TEXT",
    "date": "TEXT",
    "datetime": "TEXT",
}
# What sqlglot's type annotation is told, so it knows which results are dates (rendered in the account's
# format) and which sides of a comparison are numbers or dates (a string literal opposite is converted).
_SCHEMA_TYPES: Mapping[ColumnType, str] = {
    "integer": "BIGINT",
    "number": "DECIMAL",
    "text": "VARCHAR",
    "date": "DATE",
    "datetime": "TIMESTAMP",
}
_TEMPORAL = frozenset(exp.DataType.TEMPORAL_TYPES)
_NUMERIC = frozenset(exp.DataType.NUMERIC_TYPES)

# Functions NetSuite's SuiteQL accepts that the sandbox runs (sqlglot's node for each). Oracle's others, and
# any BUILTIN function but DF, are refused by name rather than answered differently from NetSuite.
_FUNCTIONS: tuple[type[exp.Expr], ...] = (
    exp.Upper,
    exp.Lower,
    exp.Coalesce,
    exp.ToChar,
    exp.TimeToStr,
    exp.StrToDate,
    exp.StrToTime,
    exp.ToNumber,
    exp.Count,
    exp.Sum,
    exp.Min,
    exp.Max,
    exp.Avg,
    exp.Abs,
    exp.Round,
    exp.Length,
    exp.Substring,
    exp.Trim,
    exp.Nullif,
    exp.Nvl2,
    exp.DecodeCase,
    exp.StrPosition,
    exp.Case,
    exp.If,
)


def _rownum(node: exp.Expr) -> bool:
    return isinstance(node, exp.Column) and not node.table and node.name.upper() == "ROWNUM"


def _error_position(text: str, error: dict[str, Any]) -> int:
    """1-based character position of a sqlglot parse error (it reports a line and a column)."""
    line, column = error.get("line") or 1, error.get("col") or 1
    lines = text.split("\n")
    return sum(len(part) + 1 for part in lines[: line - 1]) + column


def _parse(text: str) -> exp.Query:
    if not text.strip():
        raise SuiteQlError("The query is empty.")
    try:
        statements = [tree for tree in sqlglot.parse(text, read="oracle") if tree is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        detail = str(first.get("description", "syntax error")).split(" for <class")[0]
        raise SuiteQlError(
            f"Parse of query failed at position {_error_position(text, first)}: {detail}."
        ) from None
    except TokenError as exc:
        raise SuiteQlError(f"Parse of query failed: {exc}.") from None
    if len(statements) != 1:
        raise SuiteQlError("The query must be exactly one SELECT statement.")
    tree = statements[0]
    if not isinstance(tree, exp.Query) or any(isinstance(node, exp.DML | exp.DDL) for node in tree.walk()):
        raise SuiteQlError("Only SELECT statements can be run in SuiteQL.")
    return tree


def _oracle_model(node: exp.Expr) -> str | None:
    """The Oracle format model of TO_CHAR / TO_DATE / TO_TIMESTAMP, or None when it has none."""
    model = node.args.get("format")
    if model is None:
        return None
    if not isinstance(model, exp.Literal) or not model.is_string:
        raise SuiteQlError(f"The format of {node.sql('oracle').split('(')[0]} must be a string literal.")
    if isinstance(node, exp.ToChar):
        return str(model.this)
    # sqlglot turned the model of TO_DATE (and of TO_CHAR of a date it typed) into strftime codes; its
    # Oracle generator turns them back.
    return str(Oracle().generator().format_time(node) or "").strip("'") or None


def _check_functions(tree: exp.Expr) -> None:
    for node in tree.walk():
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            name = f"{node.this.name}.{node.expression.name}".upper()
            if name != "BUILTIN.DF":
                raise SuiteQlError(f"The function {name} is not supported by the Stratum NetSuite sandbox.")
            if len(node.expression.expressions) != 1 or not isinstance(
                node.expression.expressions[0], exp.Column
            ):
                raise SuiteQlError("BUILTIN.DF takes one field.")
            continue
        if isinstance(node, exp.Anonymous) and isinstance(node.parent, exp.Dot):
            continue
        if isinstance(node, exp.Func) and not isinstance(node, (*_FUNCTIONS, exp.Connector)):
            name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
            raise SuiteQlError(
                f"The function {name.upper()} is not supported by the Stratum NetSuite sandbox."
            )
        if isinstance(node, exp.Star) and isinstance(node.parent, exp.Count):
            continue
        if isinstance(node, exp.Column) and node.name.upper() in ("SYSDATE", "SYSTIMESTAMP"):
            raise SuiteQlError(f"{node.name.upper()} is not supported by the Stratum NetSuite sandbox.")


def _empty_strings_are_null(tree: exp.Expr) -> exp.Expr:
    # Oracle (so SuiteQL) has no empty string: '' is NULL.
    return tree.transform(
        lambda node: (
            exp.null() if isinstance(node, exp.Literal) and node.is_string and node.this == "" else node
        )
    )


def _rownum_to_limit(tree: exp.Expr) -> None:
    """``WHERE ROWNUM <= n`` (or ``< n``) as a row limit, the only use of ROWNUM the sandbox runs.

    Departure: Oracle numbers rows before ORDER BY, so ``ROWNUM <= 10 ... ORDER BY x`` in one SELECT is
    "some 10 rows, sorted", while here it is the first 10 after sorting. The usual form, ORDER BY in a
    subquery and ROWNUM outside, means the same in both."""
    for select in list(tree.find_all(exp.Select)):
        where = select.args.get("where")
        if where is None:
            continue
        conditions = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
        limit: int | None = None
        kept: list[exp.Expr] = []
        for condition in conditions:
            bound = _rownum_bound(condition)
            if bound is None:
                kept.append(condition)
            else:
                limit = bound if limit is None else min(limit, bound)
        if limit is None:
            continue
        if any(_rownum(node) for condition in kept for node in condition.walk()):
            raise SuiteQlError("ROWNUM is supported only as ROWNUM <= n in the WHERE clause.")
        select.set("where", exp.Where(this=exp.and_(*kept)) if kept else None)
        existing = select.args.get("limit") or select.args.get("fetch")
        if existing is not None:
            count = existing.args.get("expression") or existing.args.get("count")
            if isinstance(count, exp.Literal) and not count.is_string:
                limit = min(limit, int(count.this))
            select.set("fetch", None)
        select.set("limit", exp.Limit(expression=exp.Literal.number(limit)))
    if any(_rownum(node) for node in tree.walk()):
        raise SuiteQlError("ROWNUM is supported only as ROWNUM <= n in the WHERE clause.")


def _rownum_bound(condition: exp.Expr) -> int | None:
    if isinstance(condition, exp.LTE | exp.LT | exp.GTE | exp.GT | exp.EQ):
        left, right = condition.this, condition.expression
        flipped = isinstance(condition, exp.GTE | exp.GT)
        if flipped:
            left, right = right, left
        if _rownum(left) and isinstance(right, exp.Literal) and not right.is_string:
            if isinstance(condition, exp.EQ):
                return 1 if right.this == "1" else 0
            value = int(Decimal(right.this))
            strict = isinstance(condition, exp.LT | exp.GT)
            return max(value - 1 if strict else value, 0)
    return None


def _name_outputs(tree: exp.Expr) -> None:
    """Give every unnamed select item NetSuite's name for it: ``expr1``, ``expr2`` ... in select order."""
    select = tree if isinstance(tree, exp.Select) else next(tree.find_all(exp.Select))
    unnamed = 0
    for index, item in enumerate(select.expressions):
        if isinstance(item, exp.Alias | exp.Column | exp.Star):
            continue
        unnamed += 1
        select.expressions[index] = exp.alias_(item, f"expr{unnamed}")
        select.expressions[index].parent = select


class SuiteQlDatabase:
    """SuiteQL's tables as an in-memory SQLite database, with the user functions SuiteQL's Oracle needs.

    It is built for one query over the records as they are then: each table's rows are made and loaded
    only when a query reads the table (`load`), so a query of 40 customers never copies 3,000
    transactions, and there is no copy to keep in step with writes."""

    def __init__(
        self, columns: Mapping[str, Mapping[str, ColumnType]], builders: Mapping[str, Callable[[], Table]]
    ) -> None:
        self.columns = {name: dict(table_columns) for name, table_columns in columns.items()}
        self._builders = dict(builders)
        self.tables: dict[str, Table] = {}
        # What a translation depends on: every table's name and typed columns.
        self.catalog = tuple((name, tuple(cols.items())) for name, cols in sorted(self.columns.items()))
        self.schema: dict[str, object] = {
            name: {column: _SCHEMA_TYPES[kind] for column, kind in table_columns.items()}
            for name, table_columns in self.columns.items()
        }
        self.failure: SuiteQlError | None = None
        self._display_rows: dict[str, dict[Any, Row]] = {}
        self.connection = sqlite3.connect(":memory:", check_same_thread=False)
        self.connection.execute("PRAGMA case_sensitive_like = ON")  # LIKE is case-sensitive in NetSuite
        self._functions()

    def load(self, names: Iterable[str]) -> None:
        """Make and load the tables `names` (those a query reads) that are not loaded yet."""
        for name in names:
            if name not in self.tables and name in self._builders:
                self._load(self._builders[name]())

    def _load(self, table: Table) -> None:
        self.tables[table.name] = table
        columns = list(table.columns)
        definition = ", ".join(f'"{name}" {_SQLITE_TYPES[table.columns[name]]}' for name in columns)
        # Table and column names are the sandbox's own (never a caller's), so building the DDL is safe.
        self.connection.execute(f'CREATE TABLE "{table.name}" ({definition})')
        placeholders = ", ".join("?" for _ in columns)
        self.connection.executemany(
            f'INSERT INTO "{table.name}" VALUES ({placeholders})',  # noqa: S608 (the sandbox's own names)
            ([_sqlite_value(table.columns[name], row.get(name)) for name in columns] for row in table.rows),
        )
        if table.display:
            self._display_rows[table.name] = {row.get("id"): row for row in table.rows}

    def _functions(self) -> None:
        # The connection keeps its user functions, and a function that held this database (a bound method,
        # a closure over self) would make a cycle through the connection, which the garbage collector cannot
        # see through (sqlite3 does not traverse its functions): every query's database, with its copy of
        # the tables, would never be freed. The functions reach the database through a weak proxy instead,
        # so a database is freed as soon as its query is done with it.
        database = weakref.proxy(self)

        def guarded(function: Callable[..., Any]) -> Callable[..., Any]:
            # SQLite reports a user function's exception as "user-defined function raised exception"; keep
            # ours.
            def call(*args: Any) -> Any:
                try:
                    return function(*args)
                except SuiteQlError as exc:
                    database.failure = exc
                    raise

            return call

        functions: dict[str, tuple[int, Callable[..., Any]]] = {
            "upper": (1, lambda value: None if value is None else str(value).upper()),
            "lower": (1, lambda value: None if value is None else str(value).lower()),
            "ns_to_char_date": (2, _to_char_date),
            "ns_to_char": (1, _to_char_value),
            "ns_to_date": (2, _to_date),
            "ns_to_number": (1, _to_number_value),
            "ns_concat": (2, _concat),
            "ns_df": (-1, lambda *args: database._display(*args)),
        }
        for name, (arity, function) in functions.items():
            self.connection.create_function(name, arity, guarded(function), deterministic=True)

    def _display(self, table: str, column: str, value: Any, row_id: Any = None) -> str | None:
        if value is None:
            return None
        shown = self.tables[table].display.get(column)
        if shown is None:
            return _render(value, temporal=self.columns[table][column] in ("date", "datetime"))
        return shown(value, self._display_rows.get(table, {}).get(row_id, {}))

    def __contains__(self, name: object) -> bool:
        return name in self.columns


def _sqlite_value(kind: ColumnType, value: Any) -> Any:
    if value is None:
        return None
    if kind == "date":
        return _store_day(value if isinstance(value, date) else date.fromisoformat(str(value)))
    if kind == "datetime":
        return _store(value)
    if kind == "number":
        return float(value)
    return value


def _to_char_date(stored: str | None, model: str | None) -> str | None:
    if stored is None:
        return None
    moment = _local(stored)
    return format_account_date(moment.date()) if model is None else _to_char(moment, model)


def _to_char_value(value: Any) -> str | None:
    return None if value is None else _render(value, temporal=False)


def _to_date(value: Any, model: str | None) -> str | None:
    if value is None:
        return None
    text = str(value)
    if model is None:
        stored = _store_text(text)
        if stored is None:
            raise SuiteQlError(
                f"The value '{value}' is not a date in the account's format (M/D/YYYY); use TO_DATE."
            )
        return stored
    return _store_local(_parse_with_model(text, model)[0])


def _to_number(value: Any) -> Decimal | int:
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, float):
        return Decimal(f"{value:.15g}")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise SuiteQlError(f"Invalid number: '{value}'.") from None


def _to_number_value(value: Any) -> int | float | None:
    if value is None:
        return None
    number = _to_number(value)
    return (
        number
        if isinstance(number, int)
        else int(number)
        if number == number.to_integral_value()
        else float(number)
    )


def _concat(left: Any, right: Any) -> str | None:
    # Oracle's || treats NULL as '' (and '' is NULL), so only NULL || NULL is NULL; SQLite's gives NULL.
    parts = [_render(part, temporal=False) for part in (left, right) if part is not None]
    return "".join(parts) or None


def _render(value: Any, *, temporal: bool) -> str:
    if temporal and isinstance(value, str):
        return format_account_date(_local(value).date())
    if isinstance(value, str):
        return value
    return format_number(value)


def _type_of(node: exp.Expr) -> exp.DType | None:
    kind = node.type
    return None if kind is None else kind.this


def _literal_for(domain: str, literal: exp.Literal) -> exp.Expr:
    """A string literal compared with a number or a date, converted as Oracle's implicit conversion does."""
    text = literal.this
    if domain == "number":
        number = _to_number(text)
        return exp.Literal.number(str(number))
    stored = _store_text(text)
    if stored is None:
        raise SuiteQlError(
            f"The value '{text}' is not a date in the account's format (M/D/YYYY); use TO_DATE."
        )
    return exp.Literal.string(stored)


def _domain(nodes: Sequence[exp.Expr]) -> str | None:
    kinds = {_type_of(node) for node in nodes if not isinstance(node, exp.Literal | exp.Null)}
    if kinds & _NUMERIC:
        return "number"
    if kinds & _TEMPORAL:
        return "date"
    return None


def _convert_literals(tree: exp.Expr) -> None:
    """Oracle converts a string literal to the other side's type; a string no number or date is an error."""
    for node in list(tree.walk()):
        if isinstance(node, exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE):
            operands = [node.this, node.expression]
        elif isinstance(node, exp.Between):
            operands = [node.this, node.args["low"], node.args["high"]]
        elif isinstance(node, exp.In) and node.expressions:
            operands = [node.this, *node.expressions]
        else:
            continue
        domain = _domain(operands)
        if domain is None:
            continue
        for operand in operands:
            if isinstance(operand, exp.Literal) and operand.is_string:
                operand.replace(_literal_for(domain, operand))


def _field_error(column: str, table: str) -> SuiteQlError:
    return SuiteQlError(f"Field '{column}' for record '{table}' was not found.")


def _check_fields(tree: exp.Expr, database: SuiteQlDatabase) -> None:
    """Unknown tables and fields, with NetSuite's messages, before sqlglot's own resolution runs."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if table.args.get("db") or table.args.get("catalog"):
            raise SuiteQlError(f"Record '{table.sql('oracle')}' was not found.")
        if table.name.lower() not in database and table.name.lower() not in ctes:
            raise SuiteQlError(f"Record '{table.name}' was not found.")
    for scope in traverse_scope(tree):
        tables = {
            alias.lower(): source.name.lower()
            for alias, (_, source) in scope.selected_sources.items()
            if isinstance(source, exp.Table) and source.name.lower() in database
        }
        select = scope.expression
        aliases = (
            {item.alias.lower() for item in select.expressions if isinstance(item, exp.Alias)}
            if isinstance(select, exp.Select)
            else set()
        )
        only_tables = all(isinstance(source, exp.Table) for _, source in scope.selected_sources.values())
        for column in scope.columns:
            name = column.name.lower()
            if column.table:
                table_name = tables.get(column.table.lower())
                if table_name is not None and name not in database.columns[table_name]:
                    raise _field_error(column.name, table_name)
                continue
            if not (only_tables and tables) or name in aliases:
                continue
            holders = [table for table in tables.values() if name in database.columns[table]]
            if not holders:
                raise _field_error(column.name, next(iter(tables.values())))
            if len(holders) > 1:
                raise SuiteQlError(f"Field '{column.name}' is ambiguous: qualify it with its table or alias.")


def _bind_display(tree: exp.Expr, database: SuiteQlDatabase) -> None:
    """``BUILTIN.DF(t.field)`` -> ``ns_df('table', 'field', t.field, t.id)``, a lookup in the database."""
    for scope in traverse_scope(tree):
        sources = {alias.lower(): source for alias, (_, source) in scope.selected_sources.items()}
        for dot in list(scope.expression.find_all(exp.Dot)):
            if not isinstance(dot.expression, exp.Anonymous):
                continue
            column = dot.expression.expressions[0]
            source = sources.get(column.table.lower()) if column.table else None
            if not isinstance(source, exp.Table):
                raise SuiteQlError("BUILTIN.DF needs a field of a record, not of a subquery.")
            table = source.name.lower()
            row_id = exp.column("id", table=column.table) if "id" in database.columns[table] else exp.null()
            dot.replace(
                exp.Anonymous(
                    this="ns_df",
                    expressions=[
                        exp.Literal.string(table),
                        exp.Literal.string(column.name.lower()),
                        column.copy(),
                        row_id,
                    ],
                )
            )


def _sqlite_functions(tree: exp.Expr) -> exp.Expr:
    """Oracle's functions SQLite lacks, as the database's user functions (arguments typed by sqlglot)."""

    def rewrite(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.ToChar | exp.TimeToStr):
            model = _oracle_model(node)
            if isinstance(node, exp.TimeToStr) or _type_of(node.this) in _TEMPORAL:
                _model_check(model)
                return exp.Anonymous(this="ns_to_char_date", expressions=[node.this, _model_literal(model)])
            if model is not None:
                raise SuiteQlError("TO_CHAR of a number with a format model is not supported by the sandbox.")
            return exp.Anonymous(this="ns_to_char", expressions=[node.this])
        if isinstance(node, exp.StrToDate | exp.StrToTime):
            model = _oracle_model(node)
            _model_check(model)
            if _type_of(node.this) in _TEMPORAL:
                already: exp.Expr = node.this
                return already
            return exp.Anonymous(this="ns_to_date", expressions=[node.this, _model_literal(model)])
        if isinstance(node, exp.ToNumber):
            return exp.Anonymous(this="ns_to_number", expressions=[node.this])
        if isinstance(node, exp.DPipe):
            return exp.Anonymous(this="ns_concat", expressions=[node.this, node.expression])
        return node

    # Innermost first, so an argument is rewritten before the call that takes it (a || b || c).
    for node in reversed(list(tree.walk())):
        if node is not tree:
            replacement = rewrite(node)
            if replacement is not node:
                node.replace(replacement)
    return tree


def _model_check(model: str | None) -> None:
    if model is not None:
        _format_model(model)  # a bad model is an error now, not on the first row


def _model_literal(model: str | None) -> exp.Expr:
    return exp.null() if model is None else exp.Literal.string(model)


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """A SuiteQL query translated for the sandbox's SQLite: `run` gives the rows as NetSuite renders them."""

    database: SuiteQlDatabase
    sql: str
    columns: tuple[str, ...]
    temporal: tuple[bool, ...]
    tables: tuple[str, ...]

    def run(self) -> list[dict[str, str]]:
        """Every result row: ``{column: value as a string}`` with NULL columns left out."""
        self.database.load(self.tables)
        self.database.failure = None
        try:
            rows = self.database.connection.execute(self.sql).fetchall()
        except sqlite3.Error as exc:
            if self.database.failure is not None:
                raise self.database.failure from None
            raise SuiteQlError(f"Search error occurred: {exc}.") from None
        rendered: list[dict[str, str]] = []
        for row in rows:
            rendered.append(
                {
                    name: _render(value, temporal=temporal)
                    for name, value, temporal in zip(self.columns, row, self.temporal, strict=True)
                    if value is not None
                }
            )
        return rendered


@dataclass(frozen=True, slots=True)
class _Translation:
    """What a query's translation is, without the database it was first translated against."""

    sql: str
    columns: tuple[str, ...]
    temporal: tuple[bool, ...]
    tables: tuple[str, ...]


# Translations by (query text, the tables' columns): the translation depends on nothing else, and a client
# paging through one query (or polling with it) sends the same text again and again. Only the translation is
# kept, never the query's database: each database holds a copy of the tables it loaded (every record of the
# account as it was then, and its SQLite connection), so keeping it would pin up to 256 ever larger copies
# of the account in memory, one per distinct query text (an id is part of the text).
_TRANSLATIONS: dict[tuple[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]], _Translation] = {}
_TRANSLATIONS_KEPT = 256


def compile_suiteql(text: str, database: SuiteQlDatabase) -> CompiledQuery:
    """Read `text` as SuiteQL (Oracle SQL) and translate it for `database`; `SuiteQlError` if NetSuite
    would not run it."""
    key = (text, database.catalog)
    known = _TRANSLATIONS.get(key)
    if known is None:
        known = _translate(text, database)
        if len(_TRANSLATIONS) >= _TRANSLATIONS_KEPT:
            _TRANSLATIONS.clear()
        _TRANSLATIONS[key] = known
    return CompiledQuery(database, known.sql, known.columns, known.temporal, known.tables)


def _translate(text: str, database: SuiteQlDatabase) -> _Translation:
    tree: exp.Expr = _parse(text)
    _check_functions(tree)
    tree = _empty_strings_are_null(tree)
    _rownum_to_limit(tree)
    _check_fields(tree, database)
    _name_outputs(tree)
    try:
        tree = qualify(
            tree,
            schema=database.schema,
            dialect="oracle",
            validate_qualify_columns=True,
            quote_identifiers=False,
            identify=False,
        )
    except OptimizeError as exc:
        raise SuiteQlError(f"Search error occurred: {exc}.") from None
    annotate_types(tree, schema=database.schema, dialect="oracle")
    assert isinstance(tree, exp.Query)  # qualify keeps the statement a query
    selects = tree.selects
    names = tuple(item.alias_or_name.lower() for item in selects)
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise SuiteQlError(
            f"The column name '{sorted(duplicates)[0]}' is used more than once in the select list."
        )
    temporal = tuple(_type_of(item) in _TEMPORAL for item in selects)
    _convert_literals(tree)
    _bind_display(tree, database)
    tree = _sqlite_functions(tree)
    try:
        sql = tree.sql(dialect="sqlite", identify=True, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise SuiteQlError(f"The query uses what the Stratum NetSuite sandbox cannot run: {exc}.") from None
    read = tuple(sorted({table.name.lower() for table in tree.find_all(exp.Table)} & set(database.columns)))
    return _Translation(sql, names, temporal, read)


# ---------------------------------------------------------------------------------------------------------
# Record filters ("q")
# ---------------------------------------------------------------------------------------------------------

# Operator -> (base operator, negated). The "..._NOT" forms negate; NOT_INCLUSIVE is NetSuite's spelling.
_Q_OPERATORS: dict[str, tuple[str, bool]] = {}
for _base in (
    "IS",
    "EQUAL",
    "GREATER",
    "GREATER_OR_EQUAL",
    "LESS",
    "LESS_OR_EQUAL",
    "CONTAIN",
    "START_WITH",
    "END_WITH",
    "EMPTY",
    "ANY_OF",
    "BETWEEN",
    "AFTER",
    "BEFORE",
    "ON",
    "ON_OR_AFTER",
    "ON_OR_BEFORE",
    "WITHIN",
):
    _Q_OPERATORS[_base] = (_base, False)
    _Q_OPERATORS[f"{_base}_NOT"] = (_base, True)
_Q_OPERATORS["BETWEEN_INCLUSIVE"] = ("BETWEEN_INCLUSIVE", False)
_Q_OPERATORS["BETWEEN_NOT_INCLUSIVE"] = ("BETWEEN_INCLUSIVE", True)

_Q_BY_KIND: Mapping[str, frozenset[str]] = {
    "text": frozenset({"IS", "CONTAIN", "START_WITH", "END_WITH", "EMPTY"}),
    "boolean": frozenset({"IS"}),
    "number": frozenset(
        {
            "EQUAL",
            "GREATER",
            "GREATER_OR_EQUAL",
            "LESS",
            "LESS_OR_EQUAL",
            "BETWEEN",
            "BETWEEN_INCLUSIVE",
            "ANY_OF",
            "EMPTY",
        }
    ),
    "select": frozenset({"ANY_OF", "IS", "EQUAL", "EMPTY"}),
    "date": frozenset({"AFTER", "BEFORE", "ON", "ON_OR_AFTER", "ON_OR_BEFORE", "WITHIN", "EMPTY"}),
}
_Q_KIND = {
    "text": "text",
    "email": "text",
    "boolean": "boolean",
    "money": "number",
    "number": "number",
    "integer": "number",
    "id": "number",
    "ref": "select",
    "enum": "select",
    "date": "date",
    "datetime": "date",
}
_Q_ARITY = {"EMPTY": 0, "ANY_OF": -1, "BETWEEN": 2, "BETWEEN_INCLUSIVE": 2, "WITHIN": 2}

_Q_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<punct>[\[\],])|(?P<word>[^\s\[\],"]+))')


@dataclass(frozen=True, slots=True)
class _QCondition:
    field: str
    operator: str
    values: tuple[str, ...]


def _q_tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _Q_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise RecordQueryError(f"Unexpected character at position {pos + 1}.")
        if match.group("string") is not None:
            raw = match.group("string")[1:-1]
            tokens.append(("value", re.sub(r"\\(.)", r"\1", raw)))
        elif match.group("punct") is not None:
            tokens.append(("punct", match.group("punct")))
        else:
            tokens.append(("word", match.group("word")))
        pos = match.end()
    return tokens


def _parse_q(text: str) -> list[list[_QCondition]]:
    """Parse a ``q`` filter into OR-groups of AND-ed conditions."""
    tokens = _q_tokens(text)
    if not tokens:
        raise RecordQueryError("The query is empty.")
    groups: list[list[_QCondition]] = [[]]
    index = 0

    def take() -> tuple[str, str]:
        nonlocal index
        if index >= len(tokens):
            raise RecordQueryError("The query ends too early.")
        token = tokens[index]
        index += 1
        return token

    while True:
        kind, field_name = take()
        if kind != "word" or field_name in ("(", ")"):
            raise RecordQueryError(f"Expected a field name, found '{field_name}'.")
        kind, operator = take()
        if kind != "word" or operator.upper() not in _Q_OPERATORS:
            raise RecordQueryError(f"Unknown operator '{operator}'.")
        base, _ = _Q_OPERATORS[operator.upper()]
        arity = _Q_ARITY.get(base, 1)
        values: list[str] = []
        if arity != 0:
            if index < len(tokens) and tokens[index] == ("punct", "["):
                index += 1
                while True:
                    kind, value = take()
                    if kind == "punct":
                        raise RecordQueryError(f"Unexpected '{value}' in a value list.")
                    values.append(value)
                    kind, separator = take()
                    if separator == "]":
                        break
                    if separator != ",":
                        raise RecordQueryError(f"Expected ',' or ']', found '{separator}'.")
            else:
                kind, value = take()
                if kind == "punct":
                    raise RecordQueryError(f"Expected a value, found '{value}'.")
                values.append(value)
            if arity > 0 and len(values) != arity:
                raise RecordQueryError(f"{operator.upper()} needs {arity} values.")
        groups[-1].append(_QCondition(field_name, operator.upper(), tuple(values)))
        if index >= len(tokens):
            return groups
        kind, connective = take()
        if kind != "word" or connective.upper() not in ("AND", "OR"):
            raise RecordQueryError(f"Expected AND or OR, found '{connective}'.")
        if connective.upper() == "OR":
            groups.append([])


RecordFilter = Callable[[Record], bool]


def _q_value(spec: FieldSpec, kind: str, raw: str) -> Any:
    if kind == "number":
        try:
            return Decimal(raw)
        except InvalidOperation:
            raise RecordQueryError(f"Invalid number '{raw}' for field {spec.name}.") from None
    if kind == "boolean":
        if raw.lower() not in ("true", "false"):
            raise RecordQueryError(f"Invalid boolean '{raw}' for field {spec.name}.")
        return raw.lower() == "true"
    if kind == "date":
        parsed = parse_account_date(raw)
        if parsed is None:
            raise RecordQueryError(f"Invalid date '{raw}' for field {spec.name}.")
        return parsed
    return raw


def _record_date(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = parse_account_date(str(value))
    return None if parsed is None else _as_datetime(parsed)


def _day_bounds(value: date | datetime) -> tuple[datetime, datetime]:
    """The instant range a filter value covers: a whole day for a date, one instant for a datetime."""
    if isinstance(value, datetime):
        return value, value
    start = _as_datetime(value)
    return start, start + timedelta(days=1) - timedelta(microseconds=1)


def _q_predicate(spec: FieldSpec, kind: str, base: str, values: list[Any]) -> RecordFilter:
    name = spec.name
    if base == "EMPTY":
        return lambda record: record.get(name) in (None, "", [])
    if kind == "text":
        needle = str(values[0]).casefold()
        tests: dict[str, Callable[[str], bool]] = {
            "IS": lambda text: text == needle,
            "CONTAIN": lambda text: needle in text,
            "START_WITH": lambda text: text.startswith(needle),
            "END_WITH": lambda text: text.endswith(needle),
        }
        test = tests[base]
        return lambda record: record.get(name) is not None and test(str(record[name]).casefold())
    if kind == "boolean":
        expected = values[0]
        return lambda record: bool(record.get(name)) == expected
    if kind == "select":
        wanted = {str(value) for value in values}
        return lambda record: record.get(name) is not None and str(record[name]) in wanted
    if kind == "number":
        numbers = [Decimal(str(value)) for value in values]

        def number_test(record: Record) -> bool:
            value = record.get(name)
            if value is None or value == "":
                return False
            current = Decimal(str(value))
            if base == "ANY_OF":
                return current in numbers
            if base == "BETWEEN":
                return numbers[0] < current < numbers[1]
            if base == "BETWEEN_INCLUSIVE":
                return numbers[0] <= current <= numbers[1]
            op = {"EQUAL": "=", "GREATER": ">", "GREATER_OR_EQUAL": ">=", "LESS": "<", "LESS_OR_EQUAL": "<="}
            return compare_values(op[base], current, numbers[0])

        return number_test
    bounds = [_day_bounds(value) for value in values]

    def date_test(record: Record) -> bool:
        moment = _record_date(record.get(name))
        if moment is None:
            return False
        if spec.kind == "date":
            # A date field holds a whole day: compare days, whatever precision the filter value has.
            day = _as_datetime(moment.date())
            first = _day_bounds(bounds[0][0].date())
        else:
            day, first = moment, bounds[0]
        if base == "AFTER":
            return day > first[1]
        if base == "BEFORE":
            return day < first[0]
        if base == "ON":
            return first[0] <= day <= first[1]
        if base == "ON_OR_AFTER":
            return day >= first[0]
        if base == "ON_OR_BEFORE":
            return day <= first[1]
        return first[0] <= day <= bounds[1][1]  # WITHIN

    return date_test


def _negated(test: RecordFilter) -> RecordFilter:
    return lambda record: not test(record)


def compile_record_query(text: str, record_type: RecordType) -> RecordFilter:
    """Compile a ``q`` filter for `record_type`; raise `RecordQueryError` when NetSuite would reject it."""
    groups: list[list[RecordFilter]] = []
    for group in _parse_q(text):
        tests: list[RecordFilter] = []
        for condition in group:
            spec = record_type.field(condition.field)
            if spec is None or spec.kind == "sublist":
                raise RecordQueryError(
                    f"Field '{condition.field}' is not a searchable field of record {record_type.name}."
                )
            kind = _Q_KIND[spec.kind]
            base, negated = _Q_OPERATORS[condition.operator]
            if base not in _Q_BY_KIND[kind]:
                raise RecordQueryError(
                    f"The operator {condition.operator} cannot be used with field {spec.name}."
                )
            values = [_q_value(spec, kind, raw) for raw in condition.values]
            test = _q_predicate(spec, kind, base, values)
            tests.append(_negated(test) if negated else test)
        groups.append(tests)
    return lambda record: any(all(test(record) for test in group) for group in groups)


# ---------------------------------------------------------------------------------------------------------
# NetSuite's tables over the sandbox records
# ---------------------------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


def _moment(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _flag(value: Any) -> str:
    return "T" if value else "F"


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(repr(float(value)))


_TRANSACTION_COLUMNS: Mapping[str, ColumnType] = {
    "id": "integer",
    "tranid": "text",
    "type": "text",
    "entity": "integer",
    "trandate": "date",
    "duedate": "date",
    "status": "text",
    "foreigntotal": "number",
    "foreignamountpaid": "number",
    "foreignamountremaining": "number",
    "foreignamountunpaid": "number",
    "currency": "integer",
    "externalid": "text",
    "memo": "text",
    "otherrefnum": "text",
    # The transaction this one was made from (a credit memo's invoice, an invoice's sales order).
    "createdfrom": "integer",
    "createddate": "datetime",
    "lastmodifieddate": "datetime",
}

# transactionline: one row per line, the header's own "main line" (mainline 'T', linesequencenumber 0)
# first, as NetSuite's table has it. On sales transactions NetSuite stores item lines' quantity and amount
# with the sign of the posting (negative: a credit to income), so a query negates them to show the invoice's.
_TRANSACTION_LINE_COLUMNS: Mapping[str, ColumnType] = {
    "id": "integer",
    "transaction": "integer",
    "linesequencenumber": "integer",
    "mainline": "text",
    "item": "integer",
    "memo": "text",
    "quantity": "number",
    "rate": "number",
    "foreignamount": "number",
    "entity": "integer",
    # The transaction's subsidiary on every line (OneWorld; Records Catalog, TransactionLine.subsidiary):
    # SuiteQL's transaction table has no subsidiary column, so a query reads the main line's.
    "subsidiary": "integer",
}


# Record type -> (SuiteQL ``type``, the field naming the customer, the field holding the total, the type's
# display name). Only invoices carry a due date, balances and the customer's reference number.
_TRANSACTION_SOURCES: Mapping[str, tuple[str, str, str, str]] = {
    "invoice": ("CustInvc", "entity", "total", "Invoice"),
    "customerPayment": ("CustPymt", "customer", "payment", "Payment"),
    "salesOrder": ("SalesOrd", "entity", "total", "Sales Order"),
    "creditMemo": ("CustCred", "entity", "total", "Credit Memo"),
}


def _transaction_rows(records: Mapping[str, Mapping[str, Record]]) -> list[Row]:
    rows: list[Row] = []
    for source, (tran_type, entity_field, total_field, _) in _TRANSACTION_SOURCES.items():
        invoice = source == "invoice"
        for record in records[source].values():
            rows.append(
                {
                    "id": _int(record["id"]),
                    "tranid": record["tranId"],
                    "type": tran_type,
                    "entity": _int(record[entity_field]),
                    "trandate": _day(record["tranDate"]),
                    "duedate": _day(record["dueDate"]) if invoice else None,
                    "status": record["status"],
                    "foreigntotal": _money(record[total_field]),
                    "foreignamountpaid": _money(record["amountPaid"]) if invoice else None,
                    "foreignamountremaining": _money(record["amountRemaining"]) if invoice else None,
                    "foreignamountunpaid": _money(record["amountRemaining"]) if invoice else None,
                    "currency": _int(record["currency"]),
                    "externalid": record["externalId"],
                    "memo": record["memo"],
                    "otherrefnum": record["otherRefNum"] if invoice else None,
                    "createdfrom": _int(record.get("createdFrom")),
                    "createddate": _moment(record["createdDate"]),
                    "lastmodifieddate": _moment(record["lastModifiedDate"]),
                }
            )
    rows.sort(key=lambda row: row["id"])
    return rows


def _posted(value: Decimal | None) -> Decimal | None:
    return None if value is None else -value


def _transaction_line_rows(records: Mapping[str, Mapping[str, Record]]) -> list[Row]:
    rows: list[Row] = []
    for source in ("invoice", "salesOrder"):
        for record in records[source].values():
            transaction, entity = _int(record["id"]), _int(record["entity"])
            subsidiary = _int(record.get("subsidiary"))
            rows.append(
                {
                    "id": 0,
                    "transaction": transaction,
                    "linesequencenumber": 0,
                    "mainline": "T",
                    "memo": record.get("memo"),
                    "foreignamount": _money(record.get("total")),
                    "entity": entity,
                    "subsidiary": subsidiary,
                }
            )
            for number, line in enumerate(record.get("item") or [], start=1):
                rows.append(
                    {
                        "id": _int(line.get("line")) or number,
                        "transaction": transaction,
                        "linesequencenumber": number,
                        "mainline": "F",
                        "item": _int(line.get("item")),
                        "memo": line.get("description"),
                        "quantity": _posted(_money(line.get("quantity"))),
                        "rate": _money(line.get("rate")),
                        "foreignamount": _posted(_money(line.get("amount"))),
                        "entity": entity,
                        "subsidiary": subsidiary,
                    }
                )
    rows.sort(key=lambda row: (row["transaction"], row["linesequencenumber"]))
    return rows


_KIND_TO_COLUMN: Mapping[str, ColumnType] = {
    "id": "integer",
    "text": "text",
    "email": "text",
    "date": "date",
    "datetime": "datetime",
    "boolean": "text",
    "money": "number",
    "number": "number",
    "integer": "integer",
    "ref": "integer",
    "enum": "text",
}

Display = Callable[[Any, Row], str | None]


def _ref_display(records: Mapping[str, Mapping[str, Record]], ref_types: Sequence[str]) -> Display:
    """BUILTIN.DF of a reference: the target record's display name (its ``refName`` in REST)."""

    def show(value: Any, _row: Row) -> str | None:
        key = str(value)
        owner = next((name for name in ref_types if key in records.get(name, {})), None)
        return None if owner is None else ref_name(records, owner, key)

    return show


def _choice_display(choices: Mapping[str, str]) -> Display:
    return lambda value, _row: choices.get(str(value), str(value))


def _displays(records: Mapping[str, Mapping[str, Record]], specs: Sequence[FieldSpec]) -> dict[str, Display]:
    shown: dict[str, Display] = {}
    for spec in specs:
        if spec.kind == "ref":
            shown[spec.name.lower()] = _ref_display(records, spec.ref_types)
        elif spec.kind == "enum" and spec.choices is not None:
            shown[spec.name.lower()] = _choice_display(spec.choices)
    return shown


def _body_fields(record_type: RecordType) -> list[FieldSpec]:
    return [spec for spec in record_type.fields if spec.kind not in ("sublist", "subrecord")]


def _view_columns(record_type: RecordType) -> dict[str, ColumnType]:
    return {spec.name.lower(): _KIND_TO_COLUMN[spec.kind] for spec in _body_fields(record_type)}


def _view(
    record_type: RecordType,
    records: Mapping[str, Mapping[str, Record]],
    table: str | None = None,
) -> Table:
    """A table whose columns are the record's body fields, lower-cased, converted to SuiteQL values."""
    specs = _body_fields(record_type)
    columns = _view_columns(record_type)
    converters: dict[str, Callable[[Any], Any]] = {
        "id": _int,
        "ref": _int,
        "integer": _int,
        "date": _day,
        "datetime": _moment,
        "boolean": _flag,
        "money": _money,
        "number": _money,
    }
    rows: list[Row] = []
    for record in records[record_type.name].values():
        row: dict[str, Any] = {}
        for spec in specs:
            convert = converters.get(spec.kind)
            value = record.get(spec.name)
            row[spec.name.lower()] = convert(value) if convert is not None else value
        rows.append(row)
    rows.sort(key=lambda row: row["id"])
    return Table(table or record_type.name.lower(), columns, rows, _displays(records, specs))


def _transaction_status(record_types: Mapping[str, RecordType]) -> Display:
    # BUILTIN.DF(status) on transaction names the type too, "Invoice : Paid In Full" (NetSuite's list text;
    # https://timdietrich.me/blog/netsuite-suiteql-transaction-statuses).
    by_type: dict[str, tuple[str, Mapping[str, str]]] = {}
    for source, (tran_type, _, _, label) in _TRANSACTION_SOURCES.items():
        spec = record_types[source].field("status")
        by_type[tran_type] = (label, (spec.choices if spec is not None else None) or {})

    def show(value: Any, row: Row) -> str | None:
        label, choices = by_type.get(str(row.get("type")), ("", {}))
        text = choices.get(str(value), str(value))
        return f"{label} : {text}" if label else text

    return show


def _job_table(record_type: RecordType, records: Mapping[str, Mapping[str, Record]]) -> Table:
    # A project's customer is its "parent" on the record and also "customer" in SuiteQL.
    job = _view(record_type, records)
    return Table(
        "job",
        {**job.columns, "customer": "integer"},
        [{**row, "customer": row["parent"]} for row in job.rows],
        {**job.display, "customer": job.display["parent"]},
    )


def _transaction_table(
    records: Mapping[str, Mapping[str, Record]], record_types: Mapping[str, RecordType]
) -> Table:
    return Table(
        "transaction",
        _TRANSACTION_COLUMNS,
        _transaction_rows(records),
        {
            "entity": _ref_display(records, ("customer",)),
            "currency": _ref_display(records, ("currency",)),
            "status": _transaction_status(record_types),
            "type": _choice_display({code: label for code, _, _, label in _TRANSACTION_SOURCES.values()}),
        },
    )


def _transaction_line_table(records: Mapping[str, Mapping[str, Record]]) -> Table:
    return Table(
        "transactionline",
        _TRANSACTION_LINE_COLUMNS,
        _transaction_line_rows(records),
        {"item": _ref_display(records, ("serviceItem",)), "entity": _ref_display(records, ("customer",))},
    )


def build_tables(
    records: Mapping[str, Mapping[str, Record]], record_types: Mapping[str, RecordType]
) -> SuiteQlDatabase:
    """SuiteQL's tables over `records` as they are now; each is made when a query first reads it."""
    columns: dict[str, Mapping[str, ColumnType]] = {}
    builders: dict[str, Callable[[], Table]] = {}
    for name, record_type in record_types.items():
        if name in _TRANSACTION_SOURCES:
            continue
        columns[name.lower()] = _view_columns(record_type)
        builders[name.lower()] = functools.partial(_view, record_type, records)
    columns["job"] = {**columns["job"], "customer": "integer"}
    builders["job"] = functools.partial(_job_table, record_types["job"], records)
    columns["transaction"] = _TRANSACTION_COLUMNS
    builders["transaction"] = functools.partial(_transaction_table, records, record_types)
    columns["transactionline"] = _TRANSACTION_LINE_COLUMNS
    builders["transactionline"] = functools.partial(_transaction_line_table, records)
    return SuiteQlDatabase(columns, builders)
