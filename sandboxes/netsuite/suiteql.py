"""NetSuite's two query languages, small but real: SuiteQL and the record-list ``q`` filter.

**SuiteQL** (``POST query/v1/suiteql``): a tokenizer, recursive-descent parser, binder and evaluator for::

    SELECT [DISTINCT] [TOP n] * | expr [[AS] alias], ...
    FROM table [[AS] alias]
    [WHERE cond]     cond: expr op expr | expr [NOT] LIKE expr [ESCAPE 'c'] | expr [NOT] IN (expr, ...)
                           | expr IS [NOT] NULL | expr [NOT] BETWEEN expr AND expr | NOT cond | (cond)
                           joined by AND / OR with SQL precedence; three-valued NULL logic
    [ORDER BY expr | alias | position [ASC|DESC] [NULLS FIRST|LAST], ...]
    [FETCH FIRST n ROWS ONLY]

Expressions are columns (optionally qualified by the table or its alias), single-quoted strings (``''``
escapes a quote, and as in Oracle ``''`` is NULL), numbers, NULL and the functions ``UPPER``, ``LOWER``,
``NVL``, ``COALESCE``, ``TO_CHAR``, ``TO_DATE``, ``TO_TIMESTAMP`` and ``TO_NUMBER`` (Oracle format models:
``YYYY MM DD HH24 HH MI SS AM`` and quoted text). Keywords and names are case-insensitive; string
comparisons and LIKE are case-sensitive, as in NetSuite. Values come back the way NetSuite's REST
SuiteQL does: every value a string, NULLs left out, numbers in Oracle's form (``.5``), booleans ``T``/``F``
and dates and datetimes in the account's date format (``3/2/2026``; use ``TO_CHAR`` for the time).
Joins, GROUP BY, aggregates and arithmetic are outside the subset and say so.

**Record filters** (``GET record/v1/{type}?q=``): ``field OPERATOR [value]`` conditions joined by AND / OR
(AND binds tighter; no parentheses), with NetSuite's operators per field type: ``IS``, ``CONTAIN``,
``START_WITH``, ``END_WITH``, ``EMPTY``, ``EQUAL``, ``GREATER``, ``GREATER_OR_EQUAL``, ``LESS``,
``LESS_OR_EQUAL``, ``BETWEEN``, ``BETWEEN_INCLUSIVE``, ``ANY_OF``, ``AFTER``, ``BEFORE``, ``ON``,
``ON_OR_AFTER``, ``ON_OR_BEFORE``, ``WITHIN``, each also as ``..._NOT``. Values are bare words,
double-quoted strings or ``[v1, v2]`` lists; dates are ISO (``2026-03-01``, ``2026-03-01T10:00:00Z``) or
the account format (``3/1/2026``).

`build_tables` exposes the sandbox's records as the SuiteQL tables NetSuite has (``customer``,
``transaction`` with ``type`` ``CustInvc``/``CustPymt``/``SalesOrd``, ``job``, ``timebill`` ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sandboxes.netsuite.data import FieldSpec, Record, RecordType
from sandboxes.query_language import (
    And,
    LikeEscapeError,
    Not,
    Or,
    QueryError,
    SortSpec,
    Token,
    TokenParser,
    compare_values,
    like_regex,
    sort_rows,
)

__all__ = [
    "ColumnType",
    "CompiledQuery",
    "RecordFilter",
    "RecordQueryError",
    "SuiteQlError",
    "Table",
    "build_tables",
    "compile_record_query",
    "compile_suiteql",
    "format_account_date",
    "parse_account_date",
]

ColumnType = Literal["integer", "number", "text", "date", "datetime"]
Row = Mapping[str, Any]


class SuiteQlError(QueryError):
    """A query NetSuite would reject; `message` says why, never with a stack trace."""


class RecordQueryError(QueryError):
    """A ``q`` filter NetSuite would reject."""


@dataclass(frozen=True, slots=True)
class Table:
    """A SuiteQL table: typed columns in their natural order and the rows (column -> Python value)."""

    name: str
    columns: Mapping[str, ColumnType]
    rows: Sequence[Row]


# ---------------------------------------------------------------------------------------------------------
# Dates in the account's format
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


# ---------------------------------------------------------------------------------------------------------
# SuiteQL tokens
# ---------------------------------------------------------------------------------------------------------

# The kinds of the shared `Token` this tokenizer produces.
TokenKind = Literal["ident", "qident", "string", "number", "op", "punct", "eof"]


_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$#]*")
_OPERATOR = re.compile(r"<=|>=|<>|!=|\^=|\|\||=|<|>|\+|-|/")
_PUNCT = frozenset("(),.*;")


def _syntax(text: str, pos: int, detail: str) -> SuiteQlError:
    return SuiteQlError(f"Parse of query failed at position {pos + 1}: {detail}")


def tokenize(text: str) -> list[Token]:
    """Split SuiteQL `text` into tokens, ending with an ``eof`` token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if match := _SPACE.match(text, pos):
            pos = match.end()
            continue
        if text.startswith("--", pos):
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
            continue
        if text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            if end < 0:
                raise _syntax(text, pos, "unterminated comment")
            pos = end + 2
            continue
        char = text[pos]
        if char == "'":
            chars: list[str] = []
            end = pos + 1
            while True:
                if end >= len(text):
                    raise _syntax(text, pos, "unterminated string literal")
                if text[end] == "'":
                    # Two quotes inside a literal stand for one; anything else ends it.
                    if text.startswith("''", end):
                        chars.append("'")
                        end += 2
                        continue
                    break
                chars.append(text[end])
                end += 1
            tokens.append(Token("string", text[pos : end + 1], pos, "".join(chars)))
            pos = end + 1
            continue
        if char == '"':
            end = text.find('"', pos + 1)
            if end < 0 or end == pos + 1:
                raise _syntax(text, pos, "invalid quoted identifier")
            tokens.append(Token("qident", text[pos : end + 1], pos, text[pos + 1 : end]))
            pos = end + 1
            continue
        if match := _NUMBER.match(text, pos):
            literal = match.group()
            try:
                number = Decimal(literal)
            except InvalidOperation:
                raise _syntax(text, pos, f"invalid number {literal}") from None
            integral = number == number.to_integral_value() and "." not in literal
            value: Any = int(number) if integral else number
            tokens.append(Token("number", literal, pos, value))
            pos = match.end()
            continue
        if match := _IDENT.match(text, pos):
            tokens.append(Token("ident", match.group(), pos))
            pos = match.end()
            continue
        if match := _OPERATOR.match(text, pos):
            tokens.append(Token("op", match.group(), pos))
            pos = match.end()
            continue
        if char in _PUNCT:
            tokens.append(Token("punct", char, pos))
            pos += 1
            continue
        raise _syntax(text, pos, f"unexpected character '{char}'")
    tokens.append(Token("eof", "end of query", len(text)))
    return tokens


# ---------------------------------------------------------------------------------------------------------
# SuiteQL syntax tree
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    qualifier: str | None
    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Literal_:
    value: Any  # str, int, Decimal or None
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    pos: int


Expr = Column | Literal_ | Call


@dataclass(frozen=True, slots=True)
class Compare:
    left: Expr
    op: str
    right: Expr


@dataclass(frozen=True, slots=True)
class Like:
    operand: Expr
    pattern: Expr
    escape: str | None
    negated: bool


@dataclass(frozen=True, slots=True)
class InList:
    operand: Expr
    values: tuple[Expr, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Expr
    negated: bool


@dataclass(frozen=True, slots=True)
class Between:
    operand: Expr
    low: Expr
    high: Expr
    negated: bool


Condition = Compare | Like | InList | IsNull | Between | Not["Condition"] | And["Condition"] | Or["Condition"]


@dataclass(frozen=True, slots=True)
class SelectItem:
    expr: Expr | None  # None: "*" (all columns)
    alias: str | None
    pos: int


@dataclass(frozen=True, slots=True)
class OrderItem:
    expr: Expr
    descending: bool
    nulls_first: bool | None


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    distinct: bool
    top: int | None
    items: tuple[SelectItem, ...]
    table: str
    table_pos: int
    alias: str | None
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    fetch: int | None


_RESERVED = frozenset(
    {
        "ALL",
        "AND",
        "AS",
        "ASC",
        "BETWEEN",
        "BY",
        "CROSS",
        "DESC",
        "DISTINCT",
        "ESCAPE",
        "FETCH",
        "FIRST",
        "FROM",
        "FULL",
        "GROUP",
        "HAVING",
        "IN",
        "INNER",
        "IS",
        "JOIN",
        "LAST",
        "LEFT",
        "LIKE",
        "MINUS",
        "NEXT",
        "NOT",
        "NULL",
        "NULLS",
        "OFFSET",
        "ON",
        "ONLY",
        "OR",
        "ORDER",
        "OUTER",
        "RIGHT",
        "ROW",
        "ROWS",
        "SELECT",
        "TOP",
        "UNION",
        "WHERE",
        "INTERSECT",
    }
)
# Valid SuiteQL this sandbox does not implement: say so instead of a misleading "unexpected token".
_UNSUPPORTED = frozenset(
    {
        "JOIN",
        "INNER",
        "LEFT",
        "RIGHT",
        "FULL",
        "CROSS",
        "GROUP",
        "HAVING",
        "UNION",
        "MINUS",
        "INTERSECT",
        "OFFSET",
    }
)
_AGGREGATES = frozenset({"COUNT", "SUM", "MIN", "MAX", "AVG", "LISTAGG"})


class _Parser(TokenParser):
    def __init__(self, text: str) -> None:
        super().__init__(text, tokenize(text))

    def at_separator(self) -> bool:
        return self.is_punct(",")

    def is_punct(self, char: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "punct" and token.text == char

    def unexpected(self, token: Token | None = None) -> SuiteQlError:
        token = token or self.peek()
        word = token.text.upper()
        if token.kind == "ident" and word in _UNSUPPORTED:
            return _syntax(self.text, token.pos, f"{word} is not supported by the Stratum NetSuite sandbox")
        if token.kind == "op" and token.text in ("+", "-", "/", "||"):
            return _syntax(self.text, token.pos, "arithmetic is not supported by the sandbox")
        if token.kind == "punct" and token.text == ";":
            return _syntax(self.text, token.pos, "only one statement is allowed, without ';'")
        return _syntax(self.text, token.pos, f"unexpected '{token.text}'")

    def expect_punct(self, char: str) -> None:
        if not self.is_punct(char):
            raise self.unexpected()
        self.advance()

    def name(self) -> Token:
        token = self.peek()
        if token.kind == "qident" or (token.kind == "ident" and token.text.upper() not in _RESERVED):
            self.advance()
            return token
        raise self.unexpected()

    # -- grammar ------------------------------------------------------------------------------------------

    def query(self) -> Query:
        self.expect_keyword("SELECT")
        distinct = self.accept_keyword("DISTINCT")
        if not distinct:
            self.accept_keyword("ALL")
        top = self.integer() if self.accept_keyword("TOP") else None
        items = self.separated(self.select_item)
        self.expect_keyword("FROM")
        table = self.name()
        alias: str | None = None
        if self.accept_keyword("AS") or self.peek_alias():
            alias = _name_text(self.name())
        if self.is_punct(","):
            detail = "joins are not supported by the Stratum NetSuite sandbox"
            raise _syntax(self.text, self.peek().pos, detail)
        where = self.condition() if self.accept_keyword("WHERE") else None
        order_by: tuple[OrderItem, ...] = ()
        if self.accept_keyword("ORDER"):
            self.expect_keyword("BY")
            order_by = self.order_list()
        fetch = None
        if self.accept_keyword("FETCH"):
            if not (self.accept_keyword("FIRST") or self.accept_keyword("NEXT")):
                raise self.unexpected()
            fetch = self.integer()
            if not (self.accept_keyword("ROWS") or self.accept_keyword("ROW")):
                raise self.unexpected()
            self.expect_keyword("ONLY")
        if self.peek().kind != "eof":
            raise self.unexpected()
        return Query(
            self.text,
            distinct,
            top,
            tuple(items),
            _name_text(table),
            table.pos,
            alias,
            where,
            order_by,
            fetch,
        )

    def peek_alias(self) -> bool:
        token = self.peek()
        return token.kind == "qident" or (token.kind == "ident" and token.text.upper() not in _RESERVED)

    def peek_reserved(self) -> bool:
        token = self.peek()
        return token.kind == "ident" and token.text.upper() in _RESERVED

    def select_item(self) -> SelectItem:
        token = self.peek()
        if self.is_punct("*"):
            self.advance()
            return SelectItem(None, None, token.pos)
        if token.kind in ("ident", "qident") and self.is_punct(".", 1) and self.is_punct("*", 2):
            self.index += 3
            return SelectItem(None, None, token.pos)
        expr = self.expr()
        alias = None
        if self.accept_keyword("AS") or self.peek_alias():
            alias = _name_text(self.name())
        return SelectItem(expr, alias, token.pos)

    def expr(self) -> Expr:
        token = self.peek()
        if token.kind == "string":
            self.advance()
            # Oracle has no empty string: '' is NULL.
            return Literal_(token.value if token.value != "" else None, token.pos)
        if token.kind == "number":
            self.advance()
            return Literal_(token.value, token.pos)
        if token.kind == "op" and token.text == "-" and self.peek(1).kind == "number":
            self.advance()
            number = self.advance()
            return Literal_(-number.value, token.pos)
        if token.kind == "ident" and token.text.upper() == "NULL":
            self.advance()
            return Literal_(None, token.pos)
        if token.kind == "ident" and self.is_punct("(", 1):
            return self.call()
        if token.kind in ("ident", "qident"):
            first = self.name()
            if self.is_punct("."):
                self.advance()
                if self.peek().kind == "ident" and self.is_punct("(", 1) and first.text.upper() == "BUILTIN":
                    raise _syntax(
                        self.text,
                        first.pos,
                        "BUILTIN functions are not supported by the Stratum NetSuite sandbox",
                    )
                second = self.name()
                return Column(_name_text(first), _name_text(second), first.pos)
            return Column(None, _name_text(first), first.pos)
        raise self.unexpected()

    def call(self) -> Call:
        token = self.advance()
        name = token.text.upper()
        if name in _AGGREGATES:
            raise _syntax(self.text, token.pos, f"{name} is not supported by the Stratum NetSuite sandbox")
        self.expect_punct("(")
        args: list[Expr] = [] if self.is_punct(")") else self.separated(self.expr)
        self.expect_punct(")")
        return Call(name, tuple(args), token.pos)

    def condition(self) -> Condition:
        operands = [self.conjunction()]
        while self.accept_keyword("OR"):
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Condition:
        operands = [self.negation()]
        while self.accept_keyword("AND"):
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def negation(self) -> Condition:
        if self.accept_keyword("NOT"):
            return Not(self.negation())
        if self.is_punct("("):
            self.advance()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.predicate()

    def predicate(self) -> Condition:
        left = self.expr()
        token = self.peek()
        if token.kind == "op" and token.text in ("=", "<>", "!=", "^=", "<", ">", "<=", ">="):
            self.advance()
            op = "!=" if token.text in ("<>", "^=") else token.text
            return Compare(left, op, self.expr())
        if self.accept_keyword("IS"):
            negated = self.accept_keyword("NOT")
            self.expect_keyword("NULL")
            return IsNull(left, negated)
        negated = self.accept_keyword("NOT")
        if self.accept_keyword("LIKE"):
            pattern = self.expr()
            escape = None
            if self.accept_keyword("ESCAPE"):
                escape_token = self.peek()
                if escape_token.kind != "string" or len(escape_token.value) != 1:
                    raise _syntax(self.text, escape_token.pos, "ESCAPE needs a one-character string")
                self.advance()
                escape = str(escape_token.value)
            return Like(left, pattern, escape, negated)
        if self.accept_keyword("IN"):
            self.expect_punct("(")
            if self.is_keyword("SELECT"):
                raise _syntax(
                    self.text, self.peek().pos, "subqueries are not supported by the Stratum NetSuite sandbox"
                )
            values = self.separated(self.expr)
            self.expect_punct(")")
            return InList(left, tuple(values), negated)
        if self.accept_keyword("BETWEEN"):
            low = self.expr()
            self.expect_keyword("AND")
            return Between(left, low, self.expr(), negated)
        raise self.unexpected()

    def order_list(self) -> tuple[OrderItem, ...]:
        return tuple(self.separated(self.order_item))

    def order_item(self) -> OrderItem:
        expr = self.expr()
        descending = self.descending()
        return OrderItem(expr, descending, self.nulls_first())


def _name_text(token: Token) -> str:
    # Quoted identifiers keep their case; plain ones are case-insensitive, so fold them.
    return str(token.value) if token.kind == "qident" else token.text.lower()


def parse(text: str) -> Query:
    """Parse SuiteQL `text`; raise `SuiteQlError` on anything outside the subset."""
    if not text.strip():
        raise SuiteQlError("The query is empty.")
    return _Parser(text).query()


# ---------------------------------------------------------------------------------------------------------
# SuiteQL evaluation
# ---------------------------------------------------------------------------------------------------------

ValueType = Literal["integer", "number", "text", "date", "datetime", "null"]
Evaluator = Callable[[Row], Any]
Truth = bool | None
Predicate = Callable[[Row], Truth]


@dataclass(frozen=True, slots=True)
class _Typed:
    evaluate: Evaluator
    type: ValueType
    literal: bool = False


_NUMERIC = frozenset({"integer", "number"})
_TEMPORAL = frozenset({"date", "datetime"})


def _to_number(value: Any) -> Decimal | int:
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise SuiteQlError(f"Invalid number: '{value}'.") from None


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, date):
        return _as_datetime(value)
    parsed = parse_account_date(str(value))
    if parsed is None:
        raise SuiteQlError(
            f"The value '{value}' is not a date in the account's format (M/D/YYYY); use TO_DATE."
        )
    return _as_datetime(parsed)


def _domain(left: ValueType, right: ValueType) -> ValueType:
    if left in _NUMERIC or right in _NUMERIC:
        return "number"
    if left in _TEMPORAL or right in _TEMPORAL:
        return "datetime"
    return "text"


def _coerce(domain: ValueType, value: Any) -> Any:
    if value is None:
        return None
    if domain == "number":
        return _to_number(value)
    if domain == "datetime":
        return _to_datetime(value)
    if isinstance(value, datetime):
        return format_account_date(value.date())
    if isinstance(value, date):
        return format_account_date(value)
    return value if isinstance(value, str) else format_number(value)


def format_number(value: Any) -> str:
    """A number as Oracle's TO_CHAR writes it: no exponent, no trailing zeros, ``.5`` for one half."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, int):
        return str(value)
    number = value if isinstance(value, Decimal) else Decimal(repr(value))
    text = format(number.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text.startswith("0."):
        text = text[1:]
    elif text.startswith("-0."):
        text = "-" + text[2:]
    return "0" if text in ("", "-0") else text


_FORMAT_ELEMENT = re.compile(r'"[^"]*"|YYYY|RRRR|YY|MM|DD|HH24|HH12|HH|MI|SS|AM|PM|[-/,.;: ]', re.IGNORECASE)


def _format_model(model: str) -> list[str]:
    elements: list[str] = []
    pos = 0
    while pos < len(model):
        match = _FORMAT_ELEMENT.match(model, pos)
        if match is None:
            raise SuiteQlError(f"Unsupported date format model '{model}'.")
        element = match.group()
        elements.append(element if element.startswith('"') else element.upper())
        pos = match.end()
    return elements


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
    """Parse `text` with an Oracle format model; returns the moment and whether the model has a time."""
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
            tzinfo=UTC,
        )
    except ValueError:
        raise SuiteQlError(f"The value '{text}' is not a valid date.") from None
    has_time = any(key in parts for key in ("hour", "hour12", "minute", "second"))
    return moment, has_time


_FUNCTION_ARITY = {
    "UPPER": (1, 1),
    "LOWER": (1, 1),
    "NVL": (2, 2),
    "COALESCE": (1, 99),
    "TO_CHAR": (1, 2),
    "TO_DATE": (1, 2),
    "TO_TIMESTAMP": (1, 2),
    "TO_NUMBER": (1, 1),
}


@dataclass(frozen=True, slots=True)
class OutputColumn:
    name: str
    value: _Typed


class _Binder:
    def __init__(self, query: Query, table: Table) -> None:
        self.query = query
        self.table = table
        self.names = {table.name.lower()} | ({query.alias.lower()} if query.alias else set())

    def column(self, node: Column) -> _Typed:
        if node.qualifier is not None and node.qualifier.lower() not in self.names:
            raise SuiteQlError(f"Unknown identifier '{node.qualifier}.{node.name}'.")
        name = node.name.lower()
        column_type = self.table.columns.get(name)
        if column_type is None:
            raise SuiteQlError(f"Field '{node.name}' for record '{self.table.name}' was not found.")
        return _Typed(lambda row: row.get(name), column_type)

    def expr(self, node: Expr) -> _Typed:
        if isinstance(node, Column):
            return self.column(node)
        if isinstance(node, Literal_):
            value = node.value
            literal_type: ValueType = (
                "null"
                if value is None
                else "integer"
                if isinstance(value, int)
                else "number"
                if isinstance(value, Decimal)
                else "text"
            )
            return _Typed(lambda _row: value, literal_type, literal=True)
        return self.call(node)

    def call(self, node: Call) -> _Typed:
        arity = _FUNCTION_ARITY.get(node.name)
        if arity is None:
            raise SuiteQlError(f"The function {node.name} is not supported by the Stratum NetSuite sandbox.")
        if not arity[0] <= len(node.args) <= arity[1]:
            raise SuiteQlError(f"Wrong number of arguments for {node.name}.")
        args = [self.expr(arg) for arg in node.args]
        name = node.name
        if name in ("UPPER", "LOWER"):
            inner = args[0].evaluate
            fold = str.upper if name == "UPPER" else str.lower

            def folded(row: Row) -> Any:
                value = _coerce("text", inner(row))
                return None if value is None else fold(value)

            return _Typed(folded, "text")
        if name in ("NVL", "COALESCE"):
            result_type: ValueType = next((arg.type for arg in args if arg.type != "null"), "null")
            evaluators = [arg.evaluate for arg in args]

            def first_present(row: Row) -> Any:
                values = (evaluate(row) for evaluate in evaluators)
                return next((value for value in values if value is not None), None)

            return _Typed(first_present, result_type)
        if name == "TO_NUMBER":
            inner = args[0].evaluate
            return _Typed(lambda row: _coerce("number", inner(row)), "number")
        model = self.format_argument(node, args)
        if name == "TO_CHAR":
            return self.to_char(args[0], model)
        return self.to_date(args[0], model, timestamp=name == "TO_TIMESTAMP")

    def format_argument(self, node: Call, args: list[_Typed]) -> str | None:
        if len(args) < 2:
            return None
        if not args[1].literal or args[1].type != "text":
            raise SuiteQlError(f"The format of {node.name} must be a string literal.")
        model = str(args[1].evaluate({}))
        _format_model(model)  # reject a bad model now, not on the first row
        return model

    def to_char(self, arg: _Typed, model: str | None) -> _Typed:
        inner = arg.evaluate
        source_type = arg.type

        def to_char(row: Row) -> Any:
            value = inner(row)
            if value is None:
                return None
            if source_type in _TEMPORAL or isinstance(value, date):
                moment = _as_datetime(value) if isinstance(value, date) else _to_datetime(value)
                return format_account_date(moment.date()) if model is None else _to_char(moment, model)
            return _coerce("text", value)

        return _Typed(to_char, "text")

    def to_date(self, arg: _Typed, model: str | None, *, timestamp: bool) -> _Typed:
        inner = arg.evaluate

        def to_date(row: Row) -> Any:
            value = inner(row)
            if value is None:
                return None
            if isinstance(value, date):
                return _as_datetime(value)
            if model is None:
                return _to_datetime(value)
            return _parse_with_model(str(value), model)[0]

        return _Typed(to_date, "datetime" if timestamp or model is None or _has_time(model) else "date")

    def condition(self, node: Condition) -> Predicate:
        if isinstance(node, And):
            parts = [self.condition(operand) for operand in node.operands]
            return lambda row: _and(part(row) for part in parts)
        if isinstance(node, Or):
            parts = [self.condition(operand) for operand in node.operands]
            return lambda row: _or(part(row) for part in parts)
        if isinstance(node, Not):
            inner = self.condition(node.operand)
            return lambda row: _not(inner(row))
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, IsNull):
            operand = self.expr(node.operand).evaluate
            negated = node.negated
            return lambda row: (operand(row) is None) != negated
        if isinstance(node, Like):
            return self.like(node)
        if isinstance(node, InList):
            return self.in_list(node)
        return self.between(node)

    def compare(self, node: Compare) -> Predicate:
        left, right = self.expr(node.left), self.expr(node.right)
        domain = _domain(left.type, right.type)
        op = node.op

        def predicate(row: Row) -> Truth:
            a, b = _coerce(domain, left.evaluate(row)), _coerce(domain, right.evaluate(row))
            if a is None or b is None:
                return None
            return compare_values(op, a, b)

        return predicate

    def like(self, node: Like) -> Predicate:
        operand, pattern = self.expr(node.operand), self.expr(node.pattern)
        escape, negated = node.escape, node.negated
        cache: dict[str, re.Pattern[str]] = {}

        def predicate(row: Row) -> Truth:
            value, raw = _coerce("text", operand.evaluate(row)), _coerce("text", pattern.evaluate(row))
            if value is None or raw is None:
                return None
            compiled = cache.get(raw)
            if compiled is None:
                compiled = cache[raw] = _like_regex(raw, escape)
            return (compiled.fullmatch(value) is not None) != negated

        return predicate

    def in_list(self, node: InList) -> Predicate:
        operand = self.expr(node.operand)
        values = [self.expr(value) for value in node.values]
        domain = operand.type
        for value in values:
            domain = _domain(domain, value.type)
        negated = node.negated

        def predicate(row: Row) -> Truth:
            left = _coerce(domain, operand.evaluate(row))
            if left is None:
                return None
            candidates = [_coerce(domain, value.evaluate(row)) for value in values]
            if left in candidates:
                return not negated
            # x NOT IN (..., NULL) is unknown, never true: SQL's classic trap, kept.
            return None if None in candidates else negated

        return predicate

    def between(self, node: Between) -> Predicate:
        operand, low, high = self.expr(node.operand), self.expr(node.low), self.expr(node.high)
        domain = _domain(_domain(operand.type, low.type), high.type)
        negated = node.negated

        def predicate(row: Row) -> Truth:
            value = _coerce(domain, operand.evaluate(row))
            lower, upper = _coerce(domain, low.evaluate(row)), _coerce(domain, high.evaluate(row))
            if value is None or lower is None or upper is None:
                return None
            return bool(lower <= value <= upper) != negated

        return predicate

    def outputs(self) -> list[OutputColumn]:
        columns: list[OutputColumn] = []
        seen: set[str] = set()
        unnamed = 0
        for item in self.query.items:
            if item.expr is None:
                for name in self.table.columns:
                    columns.append(OutputColumn(name, self.column(Column(None, name, item.pos))))
                    seen.add(name)
                continue
            typed = self.expr(item.expr)
            if item.alias is not None:
                name = item.alias
            elif isinstance(item.expr, Column):
                name = item.expr.name.lower()
            else:
                unnamed += 1
                name = f"expr{unnamed}"
            # Output names are lower case in NetSuite's JSON, even for quoted aliases.
            name = name.lower()
            if name in seen:
                raise SuiteQlError(f"The column name '{name}' is used more than once in the select list.")
            seen.add(name)
            columns.append(OutputColumn(name, typed))
        return columns

    def sort_keys(self, outputs: list[OutputColumn]) -> list[SortSpec[Row]]:
        by_name = {column.name: column for column in outputs}
        keys = []
        for item in self.query.order_by:
            expr = item.expr
            if isinstance(expr, Literal_) and isinstance(expr.value, int):
                if not 1 <= expr.value <= len(outputs):
                    raise SuiteQlError(f"ORDER BY position {expr.value} is not in the select list.")
                typed = outputs[expr.value - 1].value
            elif isinstance(expr, Column) and expr.qualifier is None and expr.name.lower() in by_name:
                typed = by_name[expr.name.lower()].value
            else:
                typed = self.expr(expr)
            # Oracle sorts NULLs as the largest value: last ascending, first descending.
            nulls_first = item.descending if item.nulls_first is None else item.nulls_first
            keys.append(_sort_spec(typed, item.descending, nulls_first))
        return keys


def _has_time(model: str) -> bool:
    return any(element in ("HH24", "HH", "HH12", "MI", "SS") for element in _format_model(model))


def _and(values: Iterable[Truth]) -> Truth:
    result: Truth = True
    for value in values:
        if value is False:
            return False
        if value is None:
            result = None
    return result


def _or(values: Iterable[Truth]) -> Truth:
    result: Truth = False
    for value in values:
        if value is True:
            return True
        if value is None:
            result = None
    return result


def _not(value: Truth) -> Truth:
    return None if value is None else not value


def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    # LIKE is case-sensitive in NetSuite, unlike Salesforce.
    try:
        return like_regex(pattern, escape, ignore_case=False)
    except LikeEscapeError:
        raise SuiteQlError("The LIKE pattern ends with its escape character.") from None


def _sort_value(value: Any) -> Any:
    if isinstance(value, date):
        return _as_datetime(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """A SuiteQL query bound to its table: `run` gives the result rows as NetSuite renders them."""

    table: Table
    outputs: tuple[OutputColumn, ...]
    where: Predicate | None
    order_by: tuple[SortSpec[Row], ...]
    distinct: bool
    row_limit: int | None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.outputs)

    def run(self) -> list[dict[str, str]]:
        """Every result row: ``{column: value as a string}`` with NULL columns left out."""
        rows = [row for row in self.table.rows if self.where is None or self.where(row) is True]
        sort_rows(rows, self.order_by)
        rendered: list[dict[str, str]] = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        for row in rows:
            result: dict[str, str] = {}
            for column in self.outputs:
                value = column.value.evaluate(row)
                if value is not None:
                    result[column.name] = _render(value)
            if self.distinct:
                identity = tuple(sorted(result.items()))
                if identity in seen:
                    continue
                seen.add(identity)
            rendered.append(result)
            if self.row_limit is not None and len(rendered) >= self.row_limit:
                break
        return rendered


def _sort_spec(typed: _Typed, descending: bool, nulls_first: bool) -> SortSpec[Row]:
    evaluate = typed.evaluate
    # _sort_value keeps None as None, so NULLs still sort by the key's null placement.
    return SortSpec(lambda row: _sort_value(evaluate(row)), descending, nulls_first)


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_account_date(value.date())
    if isinstance(value, date):
        return format_account_date(value)
    return format_number(value)


def compile_suiteql(text: str, tables: Mapping[str, Table]) -> CompiledQuery:
    """Parse and bind `text` against `tables` (keyed by lower-case table name)."""
    query = parse(text)
    table = tables.get(query.table.lower())
    if table is None:
        raise SuiteQlError(f"Record '{query.table}' was not found.")
    binder = _Binder(query, table)
    outputs = binder.outputs()
    where = None if query.where is None else binder.condition(query.where)
    order_by = binder.sort_keys(outputs)
    limits = [limit for limit in (query.top, query.fetch) if limit is not None]
    return CompiledQuery(
        table, tuple(outputs), where, tuple(order_by), query.distinct, min(limits) if limits else None
    )


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
    "createddate": "datetime",
    "lastmodifieddate": "datetime",
}


# Record type -> (SuiteQL ``type``, the field naming the customer, the field holding the total). Only
# invoices carry a due date, balances and the customer's reference number; the others leave them NULL.
_TRANSACTION_SOURCES: Mapping[str, tuple[str, str, str]] = {
    "invoice": ("CustInvc", "entity", "total"),
    "customerPayment": ("CustPymt", "customer", "payment"),
    "salesOrder": ("SalesOrd", "entity", "total"),
}


def _transaction_rows(records: Mapping[str, Mapping[str, Record]]) -> list[Row]:
    rows: list[Row] = []
    for source, (tran_type, entity_field, total_field) in _TRANSACTION_SOURCES.items():
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
                    "createddate": _moment(record["createdDate"]),
                    "lastmodifieddate": _moment(record["lastModifiedDate"]),
                }
            )
    rows.sort(key=lambda row: row["id"])
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


def _view(record_type: RecordType, records: Mapping[str, Record], table: str | None = None) -> Table:
    """A table whose columns are the record's body fields, lower-cased, converted to SuiteQL values."""
    specs = [spec for spec in record_type.fields if spec.kind != "sublist"]
    columns = {spec.name.lower(): _KIND_TO_COLUMN[spec.kind] for spec in specs}
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
    for record in records.values():
        row: dict[str, Any] = {}
        for spec in specs:
            convert = converters.get(spec.kind)
            value = record.get(spec.name)
            row[spec.name.lower()] = convert(value) if convert is not None else value
        rows.append(row)
    rows.sort(key=lambda row: row["id"])
    return Table(table or record_type.name.lower(), columns, rows)


def build_tables(
    records: Mapping[str, Mapping[str, Record]], record_types: Mapping[str, RecordType]
) -> dict[str, Table]:
    """SuiteQL's tables over the current records, keyed by lower-case table name."""
    tables = {
        name.lower(): _view(record_type, records[name])
        for name, record_type in record_types.items()
        if name not in ("invoice", "customerPayment", "salesOrder")
    }
    # A project's customer is its "parent" on the record and also "customer" in SuiteQL.
    job = tables["job"]
    tables["job"] = Table(
        "job",
        {**job.columns, "customer": "integer"},
        [{**row, "customer": row["parent"]} for row in job.rows],
    )
    tables["transaction"] = Table("transaction", _TRANSACTION_COLUMNS, _transaction_rows(records))
    return tables
