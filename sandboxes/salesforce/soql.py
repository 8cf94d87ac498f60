"""A small SOQL subset: tokenizer, recursive-descent parser, binder and evaluator.

Supported::

    SELECT item, ... | COUNT() FROM Obj
                            item: f | Parent.f (Account.Name, Account.Parent.Name) | COUNT(f) [alias]
                                  | (SELECT f, ... FROM ChildRelationship [WHERE] [ORDER BY] [LIMIT])
    [WHERE cond]            cond: f op value | f LIKE 'x%' | f [NOT] IN (v, ...) | NOT cond | (cond)
                            joined by AND or by OR (mixing them needs parentheses, as in Salesforce)
    [GROUP BY f, ...]
    [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
    [LIMIT n] [OFFSET n]

Values are single-quoted strings with backslash escapes, numbers, true/false/null, dates
(``2026-01-01``), datetimes (``2026-01-01T00:00:00Z``) and the date literals ``TODAY``, ``YESTERDAY``,
``TOMORROW``, ``LAST_N_DAYS:n``, ``NEXT_N_DAYS:n`` and ``THIS_``/``LAST_``/``NEXT_`` ``MONTH``,
``QUARTER`` and ``YEAR``, ranges of days counted from the org's clock in UTC. Relationship names are
the ones describe reports (`describe.relationship_name`, `describe.child_relationship_name`); a query
with ``COUNT(f)`` or ``GROUP BY`` answers ``AggregateResult`` records. Keywords, object and field names are
case-insensitive, and so are string comparisons, like in Salesforce. Errors carry Salesforce's error
codes and its ``ERROR at Row:r:Column:c`` message layout: `MALFORMED_QUERY` for syntax,
`INVALID_TYPE` for an unknown object, `INVALID_FIELD` for an unknown field and
`INVALID_QUERY_FILTER_OPERATOR` for a value or operator that does not fit the field's type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sandboxes.query_language import (
    And,
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
from sandboxes.salesforce.data import FieldSpec, ObjectSchema, Record, normalize_salesforce_id
from sandboxes.salesforce.describe import child_relationship_name, relationship_name

__all__ = [
    "BoundQuery",
    "Query",
    "SoqlError",
    "Token",
    "bind",
    "compile_query",
    "parse",
    "tokenize",
]


class SoqlError(QueryError):
    """A query Salesforce would reject; `code` is the ``errorCode`` of the 400 response."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------------------

# The kinds of the shared `Token` this tokenizer produces. String tokens also keep their raw text between
# the quotes in `Token.raw`, escapes undecoded: LIKE needs it to tell ``\%`` from ``%``.
TokenKind = Literal[
    "ident", "date_literal", "string", "number", "date", "datetime", "op", "lparen", "rparen", "comma", "eof"
]


_WHITESPACE = re.compile(r"\s+")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})(?![\w.])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\w.:])")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?![\w.])")
# ``LAST_N_DAYS:7``: a parameterised date literal is one token, the colon no operator of its own.
_N_DATE_LITERAL = re.compile(r"([A-Za-z_]+_N_[A-Za-z_]+):(\d+)(?![\w.])", re.IGNORECASE)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPERATOR = re.compile(r"<=|>=|!=|<>|=|<|>")
_PUNCTUATION: Mapping[str, TokenKind] = {"(": "lparen", ")": "rparen", ",": "comma"}
_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
    # Only meaningful to LIKE, where the raw text is used; elsewhere they stand for the bare character.
    "%": "%",
    "_": "_",
}


def _position(text: str, pos: int) -> tuple[int, int, str]:
    """Return (row, column, line) of offset `pos`, rows and columns counted from 1."""
    row = text.count("\n", 0, pos) + 1
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    return row, pos - line_start + 1, line


def _error(code: str, text: str, pos: int, detail: str) -> SoqlError:
    row, column, line = _position(text, pos)
    caret = " " * (column - 1) + "^"
    return SoqlError(code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{detail}")


def _read_string(text: str, start: int) -> Token:
    chars: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == "'":
            return Token("string", text[start : pos + 1], start, "".join(chars), text[start + 1 : pos])
        if char == "\\":
            if pos + 1 >= len(text):
                break
            escaped = text[pos + 1]
            if escaped not in _ESCAPES:
                raise _error(
                    "MALFORMED_QUERY",
                    text,
                    pos,
                    f"Invalid string literal '{text[start : pos + 2]}'. "
                    f"Illegal character sequence '\\{escaped}' in string literal.",
                )
            chars.append(_ESCAPES[escaped])
            pos += 2
            continue
        chars.append(char)
        pos += 1
    raise _error("MALFORMED_QUERY", text, start, "unterminated string literal")


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens, ending with an ``eof`` token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if match := _WHITESPACE.match(text, pos):
            pos = match.end()
            continue
        char = text[pos]
        if char == "'":
            token = _read_string(text, pos)
        elif char in _PUNCTUATION:
            token = Token(_PUNCTUATION[char], char, pos)
        elif match := _DATETIME.match(text, pos):
            try:
                value: Any = datetime.fromisoformat(match.group())
            except ValueError:
                raise _error("MALFORMED_QUERY", text, pos, f"invalid datetime: {match.group()}") from None
            token = Token("datetime", match.group(), pos, value)
        elif match := _DATE.match(text, pos):
            try:
                value = date.fromisoformat(match.group())
            except ValueError:
                raise _error("MALFORMED_QUERY", text, pos, f"invalid date: {match.group()}") from None
            token = Token("date", match.group(), pos, value)
        elif match := _NUMBER.match(text, pos):
            number = match.group()
            token = Token("number", number, pos, float(number) if "." in number else int(number))
        elif match := _N_DATE_LITERAL.match(text, pos):
            token = Token("date_literal", match.group(), pos, (match.group(1).upper(), int(match.group(2))))
        elif match := _IDENT.match(text, pos):
            token = Token("ident", match.group(), pos)
        elif match := _OPERATOR.match(text, pos):
            token = Token("op", match.group(), pos)
        else:
            raise _error("MALFORMED_QUERY", text, pos, f"no viable alternative at character '{char}'")
        tokens.append(token)
        pos += len(token.text)
    tokens.append(Token("eof", "<EOF>", len(text)))
    return tokens


# ---------------------------------------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------------------------------------

ValueKind = Literal["string", "number", "boolean", "null", "date", "datetime", "date_literal"]


@dataclass(frozen=True, slots=True)
class Name:
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class Value:
    kind: ValueKind
    value: Any
    pos: int
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Comparison:
    field: Name
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class Like:
    field: Name
    pattern: Value


@dataclass(frozen=True, slots=True)
class InList:
    field: Name
    values: tuple[Value, ...]
    negated: bool


Condition = Comparison | Like | InList | Not["Condition"] | And["Condition"] | Or["Condition"]


@dataclass(frozen=True, slots=True)
class OrderItem:
    field: Name
    descending: bool
    nulls_first: bool


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``COUNT(field) [alias]`` in a SELECT list: one number per group."""

    function: str
    field: Name
    alias: str | None


@dataclass(frozen=True, slots=True)
class Subquery:
    """``(SELECT ... FROM ChildRelationship ...)``: a parent-to-child relationship query."""

    query: Query
    pos: int


SelectItem = Name | Aggregate | Subquery


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed, not yet validated query. `fields` is None for ``SELECT COUNT()``."""

    text: str
    fields: tuple[SelectItem, ...] | None
    sobject: Name
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None
    group_by: tuple[Name, ...] = ()


_RESERVED = frozenset(
    {
        "AND",
        "ASC",
        "DESC",
        "EXCLUDES",
        "FIRST",
        "FOR",
        "FROM",
        "GROUP",
        "HAVING",
        "IN",
        "INCLUDES",
        "LAST",
        "LIKE",
        "LIMIT",
        "NOT",
        "NULL",
        "NULLS",
        "OFFSET",
        "OR",
        "ORDER",
        "SELECT",
        "TRUE",
        "FALSE",
        "USING",
        "WHERE",
        "WITH",
    }
)
# Valid SOQL this sandbox does not implement: say so instead of a misleading "unexpected token".
_UNSUPPORTED_CLAUSES = frozenset(
    {"HAVING", "WITH", "FOR", "USING", "TYPEOF", "INCLUDES", "EXCLUDES"}
)


# The date literals of the SOQL reference ("Date Formats and Date Literals") this sandbox knows; each names
# a range of days, the fiscal year being the calendar year (the default for an org).
_DATE_LITERALS = frozenset(
    {"TODAY", "YESTERDAY", "TOMORROW", "THIS_MONTH", "LAST_MONTH", "NEXT_MONTH", "THIS_QUARTER",
     "LAST_QUARTER", "NEXT_QUARTER", "THIS_YEAR", "LAST_YEAR", "NEXT_YEAR"}
)
_N_DATE_LITERALS = frozenset({"LAST_N_DAYS", "NEXT_N_DAYS"})


def _add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def date_literal_range(name: str, n: int | None, today: date) -> tuple[date, date]:
    """The days ``[start, end)`` a date literal stands for, `today` being the org's current day."""
    if name == "TODAY":
        return today, today + timedelta(days=1)
    if name == "YESTERDAY":
        return today - timedelta(days=1), today
    if name == "TOMORROW":
        return today + timedelta(days=1), today + timedelta(days=2)
    if name == "LAST_N_DAYS":
        # "starts with the current day and continues for the past n days": today is included.
        return today - timedelta(days=n or 0), today + timedelta(days=1)
    if name == "NEXT_N_DAYS":
        # "starts 00:00:00 of the next day and continues for the next n days": today is not.
        return today + timedelta(days=1), today + timedelta(days=1 + (n or 0))
    unit, step = (3, (today.month - 1) // 3 * 3) if name.endswith("QUARTER") else (1, today.month - 1)
    if name.endswith("YEAR"):
        unit, step = 12, 0
    start = _add_months(date(today.year, 1, 1), step)
    shift = {"THIS": 0, "LAST": -1, "NEXT": 1}[name.split("_", 1)[0]]
    start = _add_months(start, shift * unit)
    return start, _add_months(start, unit)


class _Parser(TokenParser):
    def __init__(self, text: str) -> None:
        super().__init__(text, tokenize(text))

    # -- token helpers ------------------------------------------------------------------------------------

    def at_separator(self) -> bool:
        return self.peek().kind == "comma"

    def unexpected(self, token: Token | None = None) -> SoqlError:
        token = token or self.peek()
        if token.kind == "ident" and token.text.upper() in _UNSUPPORTED_CLAUSES:
            detail = f"{token.text.upper()} is not supported by the Stratum Salesforce sandbox"
        else:
            detail = f"unexpected token: {token.text}"
        return _error("MALFORMED_QUERY", self.text, token.pos, detail)

    def name(self) -> Name:
        token = self.peek()
        if token.kind != "ident" or token.text.upper() in _RESERVED:
            raise self.unexpected()
        self.advance()
        return Name(token.text, token.pos)

    # -- grammar ------------------------------------------------------------------------------------------

    def query(self, *, nested: bool = False) -> Query:
        self.expect_keyword("SELECT")
        fields = self.select_list(nested=nested)
        self.expect_keyword("FROM")
        sobject = self.name()
        where = None
        if self.accept_keyword("WHERE"):
            where = self.condition()
        group_by: tuple[Name, ...] = ()
        if not nested and self.accept_keyword("GROUP"):
            self.expect_keyword("BY")
            group_by = tuple(self.separated(self.name))
        order_by: tuple[OrderItem, ...] = ()
        if self.accept_keyword("ORDER"):
            self.expect_keyword("BY")
            order_by = self.order_list()
        limit = self.integer_clause("LIMIT")
        offset = None if nested else self.integer_clause("OFFSET")
        if self.peek().kind != ("rparen" if nested else "eof"):
            raise self.unexpected()
        return Query(self.text, fields, sobject, where, order_by, limit, offset, group_by)

    def select_list(self, *, nested: bool) -> tuple[SelectItem, ...] | None:
        if self.is_keyword("COUNT") and self.peek(1).kind == "lparen" and self.peek(2).kind == "rparen":
            # COUNT() stands alone: the answer is only a totalSize.
            self.advance()
            self.advance()
            self.advance()
            return None
        return tuple(self.separated(lambda: self.select_item(nested=nested)))

    def select_item(self, *, nested: bool) -> SelectItem:
        token = self.peek()
        if token.kind == "lparen" and not nested:
            self.advance()
            inner = self.query(nested=True)
            self.expect("rparen")
            return Subquery(inner, token.pos)
        if self.is_keyword("COUNT") and self.peek(1).kind == "lparen":
            self.advance()
            self.advance()
            field = self.name()
            self.expect("rparen")
            alias = None
            if self.peek().kind == "ident" and self.peek().text.upper() not in _RESERVED:
                alias = self.advance().text
            return Aggregate("COUNT", field, alias)
        return self.name()

    def condition(self) -> Condition:
        first = self.unary()
        if not (self.is_keyword("AND") or self.is_keyword("OR")):
            return first
        connective = self.peek().text.upper()
        operands = [first]
        while self.accept_keyword(connective):
            operands.append(self.unary())
        if self.is_keyword("AND") or self.is_keyword("OR"):
            # SOQL has no precedence between AND and OR; it rejects the mix unless parenthesised.
            raise self.unexpected()
        return And(tuple(operands)) if connective == "AND" else Or(tuple(operands))

    def unary(self) -> Condition:
        if self.accept_keyword("NOT"):
            return Not(self.unary())
        if self.peek().kind == "lparen":
            self.advance()
            inner = self.condition()
            self.expect("rparen")
            return inner
        return self.simple()

    def simple(self) -> Condition:
        field = self.name()
        token = self.peek()
        if token.kind == "op":
            self.advance()
            return Comparison(field, "!=" if token.text == "<>" else token.text, self.value())
        if self.accept_keyword("LIKE"):
            pattern = self.value()
            if pattern.kind != "string":
                raise _error("MALFORMED_QUERY", self.text, pattern.pos, "LIKE needs a string literal")
            return Like(field, pattern)
        negated = self.accept_keyword("NOT")
        if self.accept_keyword("IN"):
            self.expect("lparen")
            values = self.separated(self.value)
            self.expect("rparen")
            return InList(field, tuple(values), negated)
        raise self.unexpected()

    def value(self) -> Value:
        token = self.advance()
        if token.kind == "string":
            return Value("string", token.value, token.pos, token.raw)
        if token.kind == "number":
            return Value("number", token.value, token.pos)
        if token.kind == "date":
            return Value("date", token.value, token.pos)
        if token.kind == "datetime":
            return Value("datetime", token.value, token.pos)
        if token.kind == "ident":
            word = token.text.upper()
            if word in ("TRUE", "FALSE"):
                return Value("boolean", word == "TRUE", token.pos)
            if word == "NULL":
                return Value("null", None, token.pos)
            if word in _DATE_LITERALS:
                return Value("date_literal", (word, None), token.pos)
        if token.kind == "date_literal" and token.value[0] in _N_DATE_LITERALS:
            return Value("date_literal", token.value, token.pos)
        raise self.unexpected(token)

    def order_list(self) -> tuple[OrderItem, ...]:
        return tuple(self.separated(self.order_item))

    def order_item(self) -> OrderItem:
        field = self.name()
        descending = self.descending()
        nulls_first = self.nulls_first()
        # Salesforce's default puts nulls first when ascending and last when descending.
        return OrderItem(field, descending, not descending if nulls_first is None else nulls_first)

    def integer_clause(self, keyword: str) -> int | None:
        return self.integer() if self.accept_keyword(keyword) else None


def parse(text: str) -> Query:
    """Parse `text`; raise `SoqlError` (``MALFORMED_QUERY``) on anything outside the subset."""
    if not text.strip():
        raise SoqlError("MALFORMED_QUERY", "A query must not be empty")
    return _Parser(text).query()


# ---------------------------------------------------------------------------------------------------------
# Binding (name resolution, type checks) and evaluation
# ---------------------------------------------------------------------------------------------------------

Predicate = Callable[[Record], bool]

_FILTER_ERROR = "INVALID_QUERY_FILTER_OPERATOR"
_TEXT_KINDS = frozenset({"string", "textarea", "url", "email", "phone", "picklist"})
_ID_KINDS = frozenset({"id", "reference"})
_NUMBER_KINDS = frozenset({"currency", "double", "percent", "int"})
# Salesforce names types this way in its filter error messages.
_TYPE_LABELS = {
    "currency": "currency",
    "double": "double",
    "percent": "percent",
    "int": "int",
    "date": "date",
    "datetime": "dateTime",
    "boolean": "boolean",
    "id": "id",
    "reference": "reference",
}


def _label(spec: FieldSpec) -> str:
    return _TYPE_LABELS.get(spec.kind, "string")


def _expected_value_kind(spec: FieldSpec) -> ValueKind:
    if spec.kind in _TEXT_KINDS or spec.kind in _ID_KINDS:
        return "string"
    if spec.kind in _NUMBER_KINDS:
        return "number"
    if spec.kind == "boolean":
        return "boolean"
    return "date" if spec.kind == "date" else "datetime"


def _comparable(spec: FieldSpec, value: Any) -> Any:
    """Map a stored value or a literal to something Python compares the way SOQL does."""
    if value is None:
        return None
    if spec.kind in _TEXT_KINDS or spec.kind in _ID_KINDS:
        return str(value).casefold()
    if spec.kind == "date" and isinstance(value, str):
        return date.fromisoformat(value)
    if spec.kind == "datetime" and isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def _like_regex(raw: str) -> re.Pattern[str]:
    # The tokenizer only lets complete escapes through, so the raw text never ends in a lone backslash
    # and LikeEscapeError cannot arise here. SOQL's LIKE is case-insensitive, like its comparisons.
    return like_regex(raw, "\\", ignore_case=True, unescape=_ESCAPES)


Tables = Mapping[str, Mapping[str, Record]]
"""Every object's live records by Id: what relationship fields and subqueries look into."""
UrlFor = Callable[[str, str], str]
"""The ``attributes.url`` of a record from its object name and Id."""


class _Context:
    """The records a running query looks into; set for each execution, read by the bound closures."""

    def __init__(self) -> None:
        self.tables: Tables = {}


@dataclass(frozen=True, slots=True)
class _Hop:
    reference: FieldSpec
    target: ObjectSchema
    relationship: str


@dataclass(frozen=True, slots=True)
class _Path:
    """A field of the queried object or, through lookups (``Account.Owner.Name``), of a parent."""

    hops: tuple[_Hop, ...]
    spec: FieldSpec
    context: _Context

    def parent(self, record: Record, depth: int) -> Record | None:
        """The record `depth` lookups up from `record`, None when a lookup on the way is empty."""
        current: Record | None = record
        for hop in self.hops[:depth]:
            reference = None if current is None else current.get(hop.reference.name)
            table = self.context.tables.get(hop.target.name, {})
            current = None if reference is None else table.get(reference)
        return current

    def value(self, record: Record) -> Any:
        owner = self.parent(record, len(self.hops))
        return None if owner is None else owner.get(self.spec.name)

    def comparable(self, record: Record) -> Any:
        return _comparable(self.spec, self.value(record))

    def render(self, out: Record, record: Record, url_for: UrlFor | None) -> None:
        """Put the value into `out`, nested under each relationship name, as Salesforce renders it: a
        parent with ``attributes`` and the selected fields, or null when the lookup is empty."""
        container = out
        for depth, hop in enumerate(self.hops, start=1):
            if hop.relationship in container:
                nested = container[hop.relationship]
                if nested is None:
                    return
                container = nested
                continue
            owner = self.parent(record, depth)
            if owner is None:
                container[hop.relationship] = None
                return
            nested = _attributes(hop.target.name, owner, url_for)
            container[hop.relationship] = nested
            container = nested
        container[self.spec.name] = self.value(record)


def _attributes(sobject: str, record: Record, url_for: UrlFor | None) -> Record:
    if url_for is None:
        return {}
    return {"attributes": {"type": sobject, "url": url_for(sobject, record["Id"])}}


@dataclass(frozen=True, slots=True)
class _Count:
    key: str
    path: _Path
    counts_all: bool

    def count(self, rows: list[Record]) -> int:
        # COUNT(Id) counts rows; COUNT(field) the rows where the field has a value.
        return len(rows) if self.counts_all else sum(1 for row in rows if self.path.value(row) is not None)


@dataclass(frozen=True, slots=True)
class _Children:
    """A parent-to-child subquery: the children whose `reference` points at the row, as a query result."""

    relationship: str
    child: ObjectSchema
    reference: FieldSpec
    query: BoundQuery
    context: _Context

    def render(self, out: Record, record: Record, url_for: UrlFor | None) -> None:
        children = [
            row
            for row in self.context.tables.get(self.child.name, {}).values()
            if row.get(self.reference.name) == record["Id"]
        ]
        rows = self.query.execute(children, self.context.tables)
        records = [self.query.project(row, url_for) for row in rows]
        out[self.relationship] = {"totalSize": len(rows), "done": True, "records": records} if rows else None


Column = _Path | _Count | _Children


def _sort_spec(path: _Path, descending: bool, nulls_first: bool) -> SortSpec[Record]:
    return SortSpec(path.comparable, descending, nulls_first)


@dataclass(frozen=True, slots=True)
class BoundQuery:
    """A query checked against a schema, ready to run over that object's records."""

    schema: ObjectSchema
    columns: tuple[Column, ...] | None
    predicate: Predicate | None
    order_by: tuple[SortSpec[Record], ...]
    limit: int | None
    offset: int | None
    context: _Context
    # Aggregate queries (COUNT(field), GROUP BY) answer one AggregateResult record per group.
    group_by: tuple[_Path, ...] | None = None

    @property
    def is_count(self) -> bool:
        """True for ``SELECT COUNT()``: the answer is only ``totalSize``."""
        return self.columns is None

    @property
    def fields(self) -> tuple[FieldSpec, ...] | None:
        """The selected fields of the queried object itself (not through relationships)."""
        if self.columns is None:
            return None
        return tuple(c.spec for c in self.columns if isinstance(c, _Path) and not c.hops)

    def execute(self, records: Iterable[Record], tables: Tables | None = None) -> list[Record]:
        """Return the matching records (whole, not projected) in result order, after OFFSET/LIMIT; for
        an aggregate query, the AggregateResult records. `tables` are what relationships look into."""
        if tables is not None:
            self.context.tables = tables
        rows = [record for record in records if self.predicate is None or self.predicate(record)]
        sort_rows(rows, self.order_by)
        if self.group_by is not None:
            rows = self.aggregate(rows)
        start = self.offset or 0
        end = None if self.limit is None else start + self.limit
        return rows[start:end]

    def aggregate(self, rows: list[Record]) -> list[Record]:
        group_by = self.group_by or ()
        groups: dict[tuple[Any, ...], list[Record]] = {}
        for row in rows:
            # Grouping is case-insensitive like every comparison; the first row's spelling is shown.
            groups.setdefault(tuple(path.comparable(row) for path in group_by), []).append(row)
        if not group_by:
            groups = {(): rows}
        results: list[Record] = []
        for members in groups.values():
            result: Record = {"attributes": {"type": "AggregateResult"}}
            for column in self.columns or ():
                if isinstance(column, _Count):
                    result[column.key] = column.count(members)
                elif isinstance(column, _Path):
                    result[column.spec.name] = column.value(members[0])
            results.append(result)
        return results

    def project(self, record: Record, url_for: UrlFor | None = None) -> Record:
        """Return the selected fields of `record` in selection order with canonical names, parents and
        child subqueries nested; with `url_for`, each record starts with its ``attributes``."""
        if self.group_by is not None:
            return record
        out = _attributes(self.schema.name, record, url_for)
        for column in self.columns or ():
            if not isinstance(column, _Count):
                column.render(out, record, url_for)
        return out


@dataclass(frozen=True, slots=True)
class _Range:
    """The half-open range ``[start, end)`` a date literal such as ``THIS_MONTH`` stands for."""

    start: Any
    end: Any

    def contains(self, value: Any) -> bool:
        return value is not None and bool(self.start <= value < self.end)


def _range_predicate(op: str, bounds: _Range, path: _Path) -> Predicate:
    # The SOQL reference: ``=`` matches inside the range, ``<`` before its start, ``>`` after its end.
    def predicate(record: Record) -> bool:
        value = path.comparable(record)
        if op == "=":
            return bounds.contains(value)
        if op == "!=":
            return not bounds.contains(value)
        if value is None:
            return False
        if op == "<":
            return bool(value < bounds.start)
        if op == "<=":
            return bool(value < bounds.end)
        if op == ">":
            return bool(value >= bounds.end)
        return bool(value >= bounds.start)

    return predicate


class _Binder:
    def __init__(
        self,
        query: Query,
        schema: ObjectSchema,
        schemas: Mapping[str, ObjectSchema],
        today: date,
        context: _Context | None = None,
    ) -> None:
        self.query = query
        self.schema = schema
        self.schemas = schemas
        self.today = today
        self.context = context or _Context()

    def error(self, code: str, pos: int, detail: str) -> SoqlError:
        return _error(code, self.query.text, pos, detail)

    def field(self, name: Name) -> _Path:
        """Resolve a field name, following ``Relationship.`` prefixes through lookups to parents."""
        *relationships, field_name = name.text.split(".")
        schema = self.schema
        hops: list[_Hop] = []
        for relationship in relationships:
            reference = next(
                (
                    spec
                    for spec in schema.fields
                    if (relationship_name(spec) or "").lower() == relationship.lower()
                    and spec.reference_to in self.schemas
                ),
                None,
            )
            if reference is None or reference.reference_to is None:
                raise self.error(
                    "INVALID_FIELD",
                    name.pos,
                    f"Didn't understand relationship '{relationship}' in field path. If you are attempting "
                    "to use a custom relationship, be sure to append the '__r' after the custom relationship "
                    "name. Please reference your WSDL or the describe call for the appropriate names.",
                )
            schema = self.schemas[reference.reference_to]
            hops.append(_Hop(reference, schema, relationship_name(reference) or relationship))
        spec = schema.field(field_name)
        if spec is None:
            raise self.error(
                "INVALID_FIELD",
                name.pos,
                f"No such column '{field_name}' on entity '{schema.name}'. If you are attempting to use "
                "a custom field, be sure to append the '__c' after the custom field name. Please reference "
                "your WSDL or the describe call for the appropriate names.",
            )
        return _Path(tuple(hops), spec, self.context)

    def literal(self, spec: FieldSpec, value: Value) -> Any:
        """Type-check `value` against `spec` and return it in comparable form."""
        if value.kind == "null":
            return None
        expected = _expected_value_kind(spec)
        if value.kind == "date_literal" and expected in ("date", "datetime"):
            return self.date_range(spec, value)
        if value.kind != expected:
            quoting = "be enclosed in quotes" if expected == "string" else "not be enclosed in quotes"
            raise self.error(
                "INVALID_QUERY_FILTER_OPERATOR",
                value.pos,
                f"value of filter criterion for field '{spec.name}' must be of type {_label(spec)} "
                f"and should {quoting}",
            )
        if spec.kind in _ID_KINDS:
            normalized = normalize_salesforce_id(value.value)
            if normalized is None:
                raise self.error(_FILTER_ERROR, value.pos, f"invalid ID field: {value.value}")
            return normalized.casefold()
        return _comparable(spec, value.value)

    def date_range(self, spec: FieldSpec, value: Value) -> _Range:
        """A date literal as the range it stands for, in the field's own type (datetimes in UTC)."""
        name, n = value.value
        start, end = date_literal_range(name, n, self.today)
        if spec.kind == "date":
            return _Range(start, end)
        return _Range(datetime.combine(start, time(), UTC), datetime.combine(end, time(), UTC))

    def condition(self, node: Condition) -> Predicate:
        if isinstance(node, And):
            parts = [self.condition(operand) for operand in node.operands]
            return lambda record: all(part(record) for part in parts)
        if isinstance(node, Or):
            parts = [self.condition(operand) for operand in node.operands]
            return lambda record: any(part(record) for part in parts)
        if isinstance(node, Not):
            inner = self.condition(node.operand)
            return lambda record: not inner(record)
        if isinstance(node, Like):
            return self.like(node)
        if isinstance(node, InList):
            return self.in_list(node)
        return self.comparison(node)

    def comparison(self, node: Comparison) -> Predicate:
        path = self.field(node.field)
        spec = path.spec
        if node.value.kind == "null" and node.op not in ("=", "!="):
            raise self.error("INVALID_QUERY_FILTER_OPERATOR", node.value.pos, "invalid operator on null")
        if spec.kind == "boolean" and node.op not in ("=", "!="):
            raise self.error(_FILTER_ERROR, node.field.pos, "invalid operator on boolean field")
        expected = self.literal(spec, node.value)
        op = node.op

        if isinstance(expected, _Range):
            return _range_predicate(op, expected, path)

        def predicate(record: Record) -> bool:
            return compare_values(op, path.comparable(record), expected)

        return predicate

    def like(self, node: Like) -> Predicate:
        path = self.field(node.field)
        spec = path.spec
        if spec.kind not in _TEXT_KINDS:
            raise self.error(_FILTER_ERROR, node.field.pos, f"invalid operator on {_label(spec)} field")
        pattern = _like_regex(node.pattern.raw)

        def predicate(record: Record) -> bool:
            value = path.value(record)
            return value is not None and pattern.fullmatch(str(value)) is not None

        return predicate

    def in_list(self, node: InList) -> Predicate:
        path = self.field(node.field)
        spec = path.spec
        if spec.kind == "boolean":
            raise self.error(_FILTER_ERROR, node.field.pos, "invalid operator on boolean field")
        expected = [self.literal(spec, value) for value in node.values]
        negated = node.negated

        def predicate(record: Record) -> bool:
            value = path.comparable(record)
            found = any(
                item.contains(value) if isinstance(item, _Range) else value == item for item in expected
            )
            return found != negated

        return predicate

    def bind(self) -> BoundQuery:
        query = self.query
        columns: tuple[Column, ...] | None = None
        if query.fields is not None:
            seen: set[str] = set()
            bound: list[Column] = []
            unnamed = 0
            for item in query.fields:
                column: Column
                if isinstance(item, Subquery):
                    column = self.subquery(item)
                    key = column.relationship.lower()
                    pos = item.pos
                elif isinstance(item, Aggregate):
                    path = self.field(item.field)
                    if item.alias is None:
                        key, unnamed = f"expr{unnamed}", unnamed + 1
                    else:
                        key = item.alias
                    column = _Count(key, path, path.spec.kind == "id" and not path.hops)
                    pos = item.field.pos
                    key = key.lower()
                else:
                    column = self.field(item)
                    key, pos = item.text.lower(), item.pos
                if key in seen:
                    raise self.error("MALFORMED_QUERY", pos, f"duplicate field selected: {key}")
                seen.add(key)
                bound.append(column)
            columns = tuple(bound)
        group_by = self.grouping(columns)
        predicate = None if query.where is None else self.condition(query.where)
        order_by = tuple(
            _sort_spec(self.field(item.field), item.descending, item.nulls_first) for item in query.order_by
        )
        return BoundQuery(
            self.schema, columns, predicate, order_by, query.limit, query.offset, self.context, group_by
        )

    def grouping(self, columns: tuple[Column, ...] | None) -> tuple[_Path, ...] | None:
        """The GROUP BY paths of an aggregate query, None for a query of records."""
        group_names = self.query.group_by
        aggregated = columns is not None and any(isinstance(column, _Count) for column in columns)
        if not group_names and not aggregated:
            return None
        if columns is None:
            raise self.error(
                "MALFORMED_QUERY", self.query.sobject.pos, "COUNT() and GROUP BY cannot be used together"
            )
        paths = tuple(self.field(name) for name in group_names)
        grouped = {(path.hops, path.spec.name) for path in paths}
        for order in self.query.order_by:
            # Rows are sorted before they are grouped, which orders the groups only by grouped fields.
            ordered = self.field(order.field)
            if (ordered.hops, ordered.spec.name) not in grouped:
                detail = f"Ordered field must be grouped or aggregated: {ordered.spec.name}"
                raise self.error("MALFORMED_QUERY", order.field.pos, detail)
        for item, column in zip(self.query.fields or (), columns, strict=True):
            if isinstance(column, _Children):
                raise self.error("MALFORMED_QUERY", _column_pos(item), "nested queries cannot be aggregated")
            if isinstance(column, _Path) and (column.hops, column.spec.name) not in grouped:
                detail = f"Field must be grouped or aggregated: {column.spec.name}"
                raise self.error("MALFORMED_QUERY", _column_pos(item), detail)
        return paths

    def subquery(self, item: Subquery) -> _Children:
        """Bind ``(SELECT ... FROM Contacts)`` against the child object that relationship name reaches."""
        inner = item.query
        wanted = inner.sobject.text.lower()
        for child in self.schemas.values():
            for spec in child.fields:
                if (
                    spec.kind == "reference"
                    and spec.reference_to == self.schema.name
                    and child_relationship_name(child, spec).lower() == wanted
                ):
                    bound = _Binder(inner, child, self.schemas, self.today, self.context).bind()
                    if bound.columns is None or bound.group_by is not None:
                        raise self.error("MALFORMED_QUERY", item.pos, "nested queries cannot be aggregated")
                    return _Children(child_relationship_name(child, spec), child, spec, bound, self.context)
        raise self.error(
            "INVALID_TYPE",
            inner.sobject.pos,
            f"Didn't understand relationship '{inner.sobject.text}' in FROM part of query call. If you are "
            "attempting to use a custom relationship, be sure to append the '__r' after the custom "
            "relationship name. Please reference your WSDL or the describe call for the appropriate names.",
        )


def _column_pos(item: SelectItem) -> int:
    if isinstance(item, Aggregate):
        return item.field.pos
    return item.pos


def bind(query: Query, schemas: Mapping[str, ObjectSchema], today: date | None = None) -> BoundQuery:
    """Resolve `query` against `schemas` (keyed by object name, matched case-insensitively); date
    literals such as ``TODAY`` count from `today` (the org's current day, UTC; the real one if None)."""
    wanted = query.sobject.text.lower()
    schema = next((candidate for name, candidate in schemas.items() if name.lower() == wanted), None)
    if schema is None:
        raise _error(
            "INVALID_TYPE",
            query.text,
            query.sobject.pos,
            f"sObject type '{query.sobject.text}' is not supported. If you are attempting to use a custom "
            "object, be sure to append the '__c' after the entity name. Please reference your WSDL or the "
            "describe call for the appropriate names.",
        )
    return _Binder(query, schema, schemas, today or datetime.now(UTC).date()).bind()


def compile_query(text: str, schemas: Mapping[str, ObjectSchema], today: date | None = None) -> BoundQuery:
    """Parse and bind `text` in one step."""
    return bind(parse(text), schemas, today)
