"""OData v4 query options as Business Central's API pages take them: ``$filter``, ``$orderby``, ``$select``.

``$filter`` supports what the adapter and public clients send, with OData's literal syntax:

- comparisons ``eq ne gt ge lt le`` between a property and a literal (either side), joined with ``and``,
  ``or``, ``not`` and parentheses;
- ``contains(p, 'x')``, ``startswith(p, 'x')``, ``endswith(p, 'x')`` on text properties;
- literals: ``'text'`` (a quote inside is doubled: ``'Anna''s'``), integers and decimals, ``true``,
  ``false``, ``null``, GUIDs unquoted (``3f2504e0-4f89-11d3-9a0c-0305e82c3301``), dates ``2026-03-02``
  and date-times ``2026-03-02T09:30:00Z``.

Anything else (an unknown function, a property the entity does not have, an operand of the wrong type)
is an error whose message is what the OData library under Business Central answers, so the API answers
400 ``BadRequest``. Text comparisons are case-sensitive (unverified: Business Central databases collate
case-insensitively, but a client relying on that would be fragile; the sandbox errs on the strict side);
``Code`` properties (``number``, ``currencyCode``...) hold uppercase, so literals compared with them are
uppercased first, as Business Central does when it filters a Code field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sandboxes.query_language import QueryError, Token, TokenParser, compare_values

__all__ = [
    "FieldKind",
    "ODataError",
    "compile_filter",
    "compile_orderby",
    "edm_type",
    "parse_select",
]

FieldKind = Literal["guid", "text", "code", "decimal", "integer", "boolean", "date", "datetime", "enum"]
Matcher = Callable[[Mapping[str, Any]], bool]

_EDM = {
    "guid": "Edm.Guid",
    "text": "Edm.String",
    "code": "Edm.String",
    "enum": "Edm.String",
    "decimal": "Edm.Decimal",
    "integer": "Edm.Int32",
    "boolean": "Edm.Boolean",
    "date": "Edm.Date",
    "datetime": "Edm.DateTimeOffset",
}
_OPERATORS = {"eq": "=", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_OPERATOR_NAMES = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_FUNCTIONS = ("contains", "startswith", "endswith")

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ODataError(QueryError):
    """A query option Business Central would refuse (400 ``BadRequest``); ``message`` is its text."""




def edm_type(kind: FieldKind) -> str:
    """The OData primitive type a field of this kind has on the wire (and in ``$metadata``)."""
    return _EDM[kind]


# ---------------------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------------------


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        if char in "(),":
            tokens.append(Token(char, char, pos))
            pos += 1
            continue
        if char == "'":
            end = pos + 1
            chunks: list[str] = []
            while True:
                quote = text.find("'", end)
                if quote < 0:
                    raise ODataError(
                        f"There is an unterminated string literal at position {pos} in '{text}'."
                    )
                chunks.append(text[end:quote])
                if text.startswith("''", quote):
                    chunks.append("'")
                    end = quote + 2
                    continue
                end = quote + 1
                break
            tokens.append(Token("string", text[pos:end], pos, "".join(chunks)))
            pos = end
            continue
        for kind, pattern in (("guid", _GUID), ("datetime", _DATETIME), ("date", _DATE)):
            match = pattern.match(text, pos)
            if match is not None and not _continues_word(text, match.end()):
                tokens.append(Token(kind, match.group(), pos, _literal_value(kind, match.group(), text, pos)))
                pos = match.end()
                break
        else:
            match = _NUMBER.match(text, pos)
            if match is not None and not _continues_word(text, match.end()):
                raw = match.group()
                value: Any = int(raw) if re.fullmatch(r"-?\d+", raw) else Decimal(raw)
                tokens.append(Token("number", raw, pos, value))
                pos = match.end()
                continue
            match = _IDENT.match(text, pos)
            if match is None:
                raise ODataError(
                    f"Syntax error: character '{char}' is not valid at position {pos} in '{text}'."
                )
            tokens.append(Token("ident", match.group(), pos))
            pos = match.end()
    tokens.append(Token("eof", "", len(text)))
    return tokens


def _continues_word(text: str, end: int) -> bool:
    return end < len(text) and (text[end].isalnum() or text[end] in "_-:.")


def _literal_value(kind: str, raw: str, text: str, pos: int) -> Any:
    try:
        if kind == "guid":
            return raw.lower()
        if kind == "date":
            return date.fromisoformat(raw)
        return _parse_datetime(raw)
    except ValueError:
        raise ODataError(f"Unrecognized '{_EDM[kind]}' literal '{raw}' at '{pos}' in '{text}'.") from None


def _parse_datetime(raw: str) -> datetime:
    text = raw.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = re.match(r"\d+", rest)
        fraction = digits.group() if digits else ""
        text = f"{head}.{fraction[:6].ljust(6, '0')}{rest[len(fraction) :]}"
    return datetime.fromisoformat(text).astimezone(UTC)


# ---------------------------------------------------------------------------------------------------------
# $filter
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Property:
    name: str
    kind: FieldKind


@dataclass(frozen=True, slots=True)
class _Literal:
    kind: str  # string, number, guid, date, datetime, boolean, null
    value: Any


_Operand = _Property | _Literal


class _FilterParser(TokenParser):
    def __init__(self, text: str, fields: Mapping[str, FieldKind], entity_type: str) -> None:
        super().__init__(text, _tokenize(text))
        self.fields = fields
        self.entity_type = entity_type

    def unexpected(self, token: Token | None = None) -> Exception:
        token = token or self.peek()
        if token.kind == "eof":
            return ODataError(f"Expression expected at position {token.pos} in '{self.text}'.")
        return ODataError(f"Syntax error at position {token.pos + len(token.text)} in '{self.text}'.")

    def at_separator(self) -> bool:
        return self.peek().kind == ","

    def parse(self) -> Matcher:
        matcher = self.disjunction()
        if self.peek().kind != "eof":
            raise self.unexpected()
        return matcher

    def disjunction(self) -> Matcher:
        parts = [self.conjunction()]
        while self.accept_keyword("OR"):
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda record: any(part(record) for part in parts)

    def conjunction(self) -> Matcher:
        parts = [self.negation()]
        while self.accept_keyword("AND"):
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]
        return lambda record: all(part(record) for part in parts)

    def negation(self) -> Matcher:
        if self.accept_keyword("NOT"):
            inner = self.negation()
            return lambda record: not inner(record)
        return self.primary()

    def primary(self) -> Matcher:
        token = self.peek()
        if token.kind == "(":
            self.advance()
            inner = self.disjunction()
            self.expect(")")
            return inner
        if token.kind == "ident" and self.peek(1).kind == "(":
            return self.function()
        left = self.operand()
        operator = self.peek()
        if operator.kind != "ident" or operator.text not in _OPERATORS:
            if isinstance(left, _Property) and left.kind == "boolean":
                name = left.name
                return lambda record: record.get(name) is True
            raise self.unexpected()
        self.advance()
        right = self.operand()
        return self.comparison(operator.text, left, right)

    def function(self) -> Matcher:
        name = self.advance().text
        if name not in _FUNCTIONS:
            raise ODataError(f"An unknown function with name '{name}' was found.")
        self.expect("(")
        subject = self.operand()
        self.expect(",")
        needle = self.operand()
        self.expect(")")
        if not isinstance(subject, _Property) or subject.kind not in ("text", "code", "enum"):
            raise ODataError(
                f"No function signature for the function with name '{name}' matches the arguments."
            )
        if not isinstance(needle, _Literal) or needle.kind != "string":
            raise ODataError(
                f"No function signature for the function with name '{name}' matches the arguments."
            )
        field = subject.name
        wanted = str(needle.value).upper() if subject.kind == "code" else str(needle.value)
        test: Callable[[str], bool]
        if name == "contains":
            test = lambda value: wanted in value  # noqa: E731
        elif name == "startswith":
            test = lambda value: value.startswith(wanted)  # noqa: E731
        else:
            test = lambda value: value.endswith(wanted)  # noqa: E731
        return lambda record: test(str(record.get(field) or ""))

    def operand(self) -> _Operand:
        token = self.advance()
        if token.kind == "string":
            return _Literal("string", token.value)
        if token.kind in ("number", "guid", "date", "datetime"):
            return _Literal(token.kind, token.value)
        if token.kind == "ident":
            lowered = token.text.lower()
            if lowered in ("true", "false"):
                return _Literal("boolean", lowered == "true")
            if lowered == "null":
                return _Literal("null", None)
            kind = self.fields.get(token.text)
            if kind is None:
                raise ODataError(
                    f"Could not find a property named '{token.text}' on type "
                    f"'Microsoft.NAV.{self.entity_type}'."
                )
            return _Property(token.text, kind)
        raise self.unexpected(token)

    def comparison(self, operator: str, left: _Operand, right: _Operand) -> Matcher:
        if isinstance(left, _Literal) and isinstance(right, _Property):
            flipped = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}.get(operator, operator)
            return self.comparison(flipped, right, left)
        if not isinstance(left, _Property) or not isinstance(right, _Literal):
            raise ODataError("Only comparisons between a property and a literal are supported.")
        field, op = left.name, _OPERATORS[operator]
        literal = self.coerce(operator, left, right)
        kind = left.kind

        def value_of(record: Mapping[str, Any]) -> Any:
            value = record.get(field)
            if value is None or literal is None:
                return value
            if kind == "guid":
                return str(value).lower()
            if kind == "datetime":
                return _parse_datetime(str(value))
            if kind == "date":
                return date.fromisoformat(str(value))
            if kind == "decimal":
                return Decimal(value)
            return value

        return lambda record: compare_values(op, value_of(record), literal)

    def coerce(self, operator: str, prop: _Property, literal: _Literal) -> Any:
        if literal.kind == "null":
            return None
        kind = prop.kind
        accepted = {
            "guid": ("guid", "string"),
            "text": ("string",),
            "code": ("string",),
            "enum": ("string",),
            "decimal": ("number",),
            "integer": ("number",),
            "boolean": ("boolean",),
            "date": ("date",),
            "datetime": ("datetime", "date"),
        }[kind]
        if literal.kind not in accepted or (kind == "integer" and not isinstance(literal.value, int)):
            found = {
                "string": "Edm.String",
                "number": "Edm.Decimal" if isinstance(literal.value, Decimal) else "Edm.Int32",
                "guid": "Edm.Guid",
                "date": "Edm.Date",
                "datetime": "Edm.DateTimeOffset",
                "boolean": "Edm.Boolean",
            }[literal.kind]
            raise ODataError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM[kind]}' and '{found}' for operator kind '{_OPERATOR_NAMES[operator]}'."
            )
        value = literal.value
        if kind == "guid":
            text = str(value).lower()
            if not _GUID.fullmatch(text):
                raise ODataError(f"Unrecognized 'Edm.Guid' literal '{value}'.")
            return text
        if kind == "code":
            return str(value).upper()
        if kind == "decimal":
            try:
                return Decimal(value)
            except InvalidOperation:  # pragma: no cover - the tokenizer only makes valid numbers
                raise ODataError(f"Unrecognized 'Edm.Decimal' literal '{value}'.") from None
        if kind == "datetime" and isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value


def compile_filter(text: str, fields: Mapping[str, FieldKind], entity_type: str) -> Matcher:
    """A predicate over stored entities for a ``$filter`` value; raises `ODataError`."""
    if not text.strip():
        raise ODataError("The $filter expression must not be empty.")
    return _FilterParser(text, fields, entity_type).parse()


# ---------------------------------------------------------------------------------------------------------
# $orderby and $select
# ---------------------------------------------------------------------------------------------------------


def compile_orderby(text: str, fields: Mapping[str, FieldKind], entity_type: str) -> list[tuple[str, bool]]:
    """``[(property, descending)]`` for an ``$orderby`` value; raises `ODataError`."""
    keys: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise ODataError(f"Syntax error in $orderby '{text}'.")
        if words[0] not in fields:
            raise ODataError(
                f"Could not find a property named '{words[0]}' on type 'Microsoft.NAV.{entity_type}'."
            )
        keys.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return keys


def parse_select(text: str, fields: Mapping[str, FieldKind], entity_type: str) -> list[str]:
    """The properties a ``$select`` names, in the entity's order; raises `ODataError`."""
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if name == "*":
            return list(fields)
        if name not in fields:
            raise ODataError(
                f"Could not find a property named '{name}' on type 'Microsoft.NAV.{entity_type}'."
            )
    return [name for name in fields if name in names]
