"""OData v4 query options as Business Central's API pages take them: ``$filter``, ``$orderby``, ``$select``.

``$filter`` is parsed by odata-query (the whole OData v4 grammar, into a tree); this module then applies
Business Central's rules to that tree ("Using filter expressions in OData URIs" and "Known limitations with
Business Central OData", learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/):

- comparisons ``eq ne gt ge lt le`` between a property and a literal (either side), ``in`` a list of
  literals, joined with ``and``, ``or``, ``not`` and parentheses;
- the functions Business Central translates into AL filters: ``contains``, ``startswith``, ``endswith``,
  ``substring``, ``tolower`` and ``toupper`` (nested, as ``contains(tolower(p), 'x')``). ``tolower`` and
  ``toupper`` make a comparison ignore case, as Business Central documents they do. Any other OData function
  (``year``, ``length``, ``indexof``...) and arithmetic have no AL approximation: an error;
- a filter with a lambda operator (``any``, ``all``) is ignored, as Business Central documents;
- an ``or`` between two different properties is refused with Business Central's message when the sandbox is
  set to (see `compile_filter`);
- literals: ``'text'`` (a quote inside is doubled: ``'Anna''s'``), integers and decimals (kept exact, never
  a float), ``true``, ``false``, ``null``, GUIDs unquoted (``3f2504e0-4f89-11d3-9a0c-0305e82c3301``) or
  quoted, dates ``2026-03-02`` and date-times with an offset ``2026-03-02T09:30:00Z``.

Property names are case-sensitive (``displayName``, not ``DisplayName``). Errors carry the messages of the
OData library under Business Central where known, so the API answers 400 ``BadRequest``. Text comparisons
are case-sensitive (Business Central's docs say ``tolower``/``toupper`` are what turns case sensitivity
off); ``Code`` properties (``number``, ``currencyCode``...) hold uppercase, so literals compared with them
are uppercased first, as Business Central does when it filters a Code field.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal, cast

from odata_query import ast
from odata_query.exceptions import (
    ArgumentCountException,
    ODataException,
    ParsingException,
    TokenizingException,
    UnknownFunctionException,
)
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.visitor import NodeVisitor

from sandboxes.query_language import QueryError, compare_values

__all__ = [
    "OR_ACROSS_FIELDS",
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
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ODataError(QueryError):
    """A query option Business Central would refuse (400 ``BadRequest``); ``message`` is its text."""


def edm_type(kind: FieldKind) -> str:
    """The OData primitive type a field of this kind has on the wire (and in ``$metadata``)."""
    return _EDM[kind]


# ---------------------------------------------------------------------------------------------------------
# $filter: odata-query parses (the OData v4 grammar); Business Central's rules are applied to its tree here
# ---------------------------------------------------------------------------------------------------------

# What Business Central translates into an AL filter ("Using filter expressions in OData URIs"); every other
# OData function has no AL approximation there, which Business Central reports as an error.
_FUNCTIONS = frozenset({"contains", "startswith", "endswith", "substring", "tolower", "toupper"})
_COMPARATORS: dict[type[ast._Comparator], tuple[str, str]] = {
    ast.Eq: ("=", "Equal"),
    ast.NotEq: ("!=", "NotEqual"),
    ast.Gt: (">", "GreaterThan"),
    ast.GtE: (">=", "GreaterThanOrEqual"),
    ast.Lt: ("<", "LessThan"),
    ast.LtE: ("<=", "LessThanOrEqual"),
}
_FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">="}
_LITERAL_EDM = {
    "string": "Edm.String",
    "integer": "Edm.Int32",
    "decimal": "Edm.Decimal",
    "guid": "Edm.Guid",
    "date": "Edm.Date",
    "datetime": "Edm.DateTimeOffset",
    "boolean": "Edm.Boolean",
}
_ACCEPTED = {
    "guid": ("guid", "string"),
    "text": ("string",),
    "code": ("string",),
    "enum": ("string",),
    "decimal": ("integer", "decimal"),
    "integer": ("integer",),
    "boolean": ("boolean",),
    "date": ("date",),
    "datetime": ("datetime", "date"),
}
_TEXT_KINDS = ("text", "code", "enum")
# Business Central's message ("Known limitations with Business Central OData", learn.microsoft.com/
# dynamics365/business-central/dev-itpro/webservices/odata-known-limitations).
OR_ACROSS_FIELDS = (
    "An error occurred while processing this request. The 'OR' operator is not supported on distinct fields "
    "on an OData filter."
)
# OData's `in` takes a one-item list as "(x)"; odata-query wants Python's "(x,)" (its documented deviation).
_SINGLE_ITEM_IN = re.compile(r"(\bin\s*\(\s*)('(?:[^']|'')*'|[^\s(),']+)(\s*\))", re.IGNORECASE)
_OPERATOR_WORD = re.compile(r"(eq|ne|gt|ge|lt|le|and|or|not|in|add|sub|mul|div|mod|has)?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Value:
    """An operand: a property's value (or a function of it) per record, or a literal (``read`` None)."""

    kind: str  # a property's FieldKind; a literal's: string integer decimal guid date datetime boolean null
    read: Callable[[Mapping[str, Any]], Any] | None
    literal: Any = None
    fields: frozenset[str] = frozenset()
    caseless: bool = False  # under tolower()/toupper(): Business Central then compares ignoring case


@dataclass(frozen=True, slots=True)
class _Predicate:
    test: Matcher
    fields: frozenset[str]  # the properties it reads: an `or` across two of them is refused


def _stored(kind: str, value: Any) -> Any:
    """A stored property value in the form its literals take, for comparing."""
    if value is None or (value == "" and kind in ("date", "datetime")):
        return None
    if kind == "guid":
        return str(value).lower()
    if kind == "datetime":
        return _parse_datetime(str(value))
    if kind == "date":
        return date.fromisoformat(str(value))
    if kind == "decimal":
        return Decimal(value)
    return value


def _parse_datetime(raw: str) -> datetime:
    text = raw.replace("Z", "+00:00")
    if "." in text:  # Python takes at most 6 fractional digits; OData allows 12
        head, _, rest = text.partition(".")
        digits = re.match(r"\d+", rest)
        fraction = digits.group() if digits else ""
        text = f"{head}.{fraction[:6].ljust(6, '0')}{rest[len(fraction) :]}"
    return datetime.fromisoformat(text).astimezone(UTC)


def _name(identifier: ast.Identifier) -> str:
    return ".".join((*identifier.namespace, identifier.name))


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


class _FilterCompiler(NodeVisitor):
    """Turns odata-query's tree into a predicate, applying Business Central's types and rules."""

    def __init__(self, fields: Mapping[str, FieldKind], entity_type: str, *, or_across_fields: bool) -> None:
        self.fields = fields
        self.entity_type = entity_type
        self.or_across_fields = or_across_fields

    def predicate(self, node: ast._Node) -> _Predicate:
        result = self.visit(node)
        if isinstance(result, _Predicate):
            return result
        if result.read is not None and result.kind == "boolean":
            read = result.read
            return _Predicate(lambda record: read(record) is True, result.fields)
        raise ODataError("The $filter expression must evaluate to a single boolean value.")

    def value(self, node: ast._Node) -> _Value:
        result = self.visit(node)
        if isinstance(result, _Predicate):
            raise ODataError("Only comparisons between a property and a literal are supported.")
        return cast("_Value", result)

    def generic_visit(self, node: ast._Node) -> Any:
        # Time, duration and geography literals, lists outside `in`, named parameters: no AL filter has them.
        raise ODataError(f"A {type(node).__name__} is not supported in a $filter here.")

    # -- names and literals

    def no_property(self, name: str) -> ODataError:
        return ODataError(
            f"Could not find a property named '{name}' on type 'Microsoft.NAV.{self.entity_type}'."
        )

    def visit_Identifier(self, node: ast.Identifier) -> _Value:
        kind = self.fields.get(node.name)
        if node.namespace or kind is None:
            raise self.no_property(_name(node))
        name = node.name
        return _Value(kind, lambda record: _stored(kind, record.get(name)), fields=frozenset({name}))

    def visit_Attribute(self, node: ast.Attribute) -> _Value:
        # The entities here have no complex or navigation properties to walk into.
        owner = node.owner
        raise self.no_property(_name(owner) if isinstance(owner, ast.Identifier) else node.attr)

    def visit_String(self, node: ast.String) -> _Value:
        return _Value("string", None, node.val)

    def visit_Integer(self, node: ast.Integer) -> _Value:
        return _Value("integer", None, int(node.val))

    def visit_Float(self, node: ast.Float) -> _Value:
        return _Value("decimal", None, Decimal(node.val))  # from the literal's text: never a float

    def visit_Boolean(self, node: ast.Boolean) -> _Value:
        return _Value("boolean", None, node.val.lower() == "true")

    def visit_Null(self, node: ast.Null) -> _Value:
        return _Value("null", None, None)

    def visit_GUID(self, node: ast.GUID) -> _Value:
        return _Value("guid", None, node.val.lower())

    def visit_Date(self, node: ast.Date) -> _Value:
        try:
            return _Value("date", None, date.fromisoformat(node.val))
        except ValueError:
            raise ODataError(f"Unrecognized 'Edm.Date' literal '{node.val}'.") from None

    def visit_DateTime(self, node: ast.DateTime) -> _Value:
        # Edm.DateTimeOffset needs its offset (Z or +hh:mm); a local time names no instant.
        if not re.search(r"(Z|[+-]\d{2}:\d{2})$", node.val, re.IGNORECASE):
            raise ODataError(f"Unrecognized 'Edm.DateTimeOffset' literal '{node.val}'.")
        try:
            return _Value("datetime", None, _parse_datetime(node.val.upper()))
        except ValueError:
            raise ODataError(f"Unrecognized 'Edm.DateTimeOffset' literal '{node.val}'.") from None

    # -- operators

    def visit_BinOp(self, node: ast.BinOp) -> _Value:
        # Unverified wording: arithmetic has no AL approximation, which Business Central reports as an error.
        raise ODataError("Arithmetic operators cannot be translated into a filter on Business Central data.")

    def visit_UnaryOp(self, node: ast.UnaryOp) -> _Predicate:
        if not isinstance(node.op, ast.Not):
            raise ODataError(
                "Arithmetic operators cannot be translated into a filter on Business Central data."
            )
        inner = self.predicate(node.operand)
        test = inner.test
        return _Predicate(lambda record: not test(record), inner.fields)

    def visit_BoolOp(self, node: ast.BoolOp) -> _Predicate:
        left, right = self.predicate(node.left), self.predicate(node.right)
        fields = left.fields | right.fields
        first, second = left.test, right.test
        if isinstance(node.op, ast.And):
            return _Predicate(lambda record: first(record) and second(record), fields)
        if len(fields) > 1 and not self.or_across_fields:
            raise ODataError(OR_ACROSS_FIELDS)
        return _Predicate(lambda record: first(record) or second(record), fields)

    def visit_Compare(self, node: ast.Compare) -> _Predicate:
        if isinstance(node.comparator, ast.In):
            return self.membership(node)
        op, name = _COMPARATORS[type(node.comparator)]
        left, right = self.value(node.left), self.value(node.right)
        if left.read is None and right.read is not None:
            left, right, op = right, left, _FLIPPED.get(op, op)
        read = left.read
        if read is None or right.read is not None:
            # Unverified wording: an AL filter sets a field to values, so both sides cannot be properties.
            raise ODataError("Only comparisons between a property and a literal are supported.")
        wanted = self.coerce(name, left, right)
        if left.caseless:
            folded = _fold(wanted)
            return _Predicate(lambda record: compare_values(op, _fold(read(record)), folded), left.fields)
        return _Predicate(lambda record: compare_values(op, read(record), wanted), left.fields)

    def membership(self, node: ast.Compare) -> _Predicate:
        """``p in (a, b)`` ("In a list of values" in Business Central's filter expressions)."""
        subject = self.value(node.left)
        read = subject.read
        if read is None or not isinstance(node.right, ast.List):
            raise ODataError("Only comparisons between a property and a literal are supported.")
        options = [self.coerce("In", subject, self.value(item)) for item in node.right.val]
        if subject.caseless:
            folded = [_fold(option) for option in options]
            return _Predicate(lambda record: _fold(read(record)) in folded, subject.fields)
        return _Predicate(lambda record: read(record) in options, subject.fields)

    def coerce(self, operator: str, prop: _Value, literal: _Value) -> Any:
        """The literal as the property's values are compared, or the error of an operand of another type."""
        if literal.read is not None:
            raise ODataError("Only comparisons between a property and a literal are supported.")
        if literal.kind == "null":
            return None
        kind = prop.kind
        if literal.kind not in _ACCEPTED[kind]:
            raise ODataError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM[kind]}' and '{_LITERAL_EDM[literal.kind]}' for operator kind '{operator}'."
            )
        value = literal.literal
        if kind == "guid":
            text = str(value).lower()
            if not _GUID.fullmatch(text):
                raise ODataError(f"Unrecognized 'Edm.Guid' literal '{value}'.")
            return text
        if kind == "code":
            return str(value).upper()  # Code fields hold uppercase; Business Central uppercases the filter
        if kind == "decimal":
            return Decimal(value)
        if kind == "datetime" and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value

    # -- functions

    def visit_Call(self, node: ast.Call) -> _Value | _Predicate:
        name = _name(node.func)
        if name not in _FUNCTIONS:
            # Unverified wording: the documented rule is that a filter with no AL approximation is an error.
            raise ODataError(
                f"The function '{name}' cannot be translated into a filter on Business Central data."
            )
        mismatch = ODataError(
            f"No function signature for the function with name '{name}' matches the specified arguments."
        )
        subject = self.value(node.args[0])
        read = subject.read
        if read is None or subject.kind not in _TEXT_KINDS:
            raise mismatch
        if name in ("tolower", "toupper"):
            change = str.lower if name == "tolower" else str.upper
            return _Value(
                subject.kind,
                lambda record: None if (found := read(record)) is None else change(str(found)),
                fields=subject.fields,
                caseless=True,
            )
        if name == "substring":
            bounds = [self.value(arg) for arg in node.args[1:]]
            if any(bound.read is not None or bound.kind != "integer" for bound in bounds):
                raise mismatch
            start = bounds[0].literal
            stop = start + bounds[1].literal if len(bounds) > 1 else None
            return _Value(
                subject.kind,
                lambda record: None if (found := read(record)) is None else str(found)[start:stop],
                fields=subject.fields,
                caseless=subject.caseless,
            )
        needle = self.value(node.args[1])
        if needle.read is not None or needle.kind != "string":
            raise mismatch
        wanted = str(needle.literal)
        if subject.caseless:
            wanted = wanted.casefold()
        elif subject.kind == "code":
            wanted = wanted.upper()
        caseless = subject.caseless

        def text_of(record: Mapping[str, Any]) -> str:
            found = str(read(record) or "")
            return found.casefold() if caseless else found

        if name == "contains":
            return _Predicate(lambda record: wanted in text_of(record), subject.fields)
        if name == "startswith":
            return _Predicate(lambda record: text_of(record).startswith(wanted), subject.fields)
        return _Predicate(lambda record: text_of(record).endswith(wanted), subject.fields)


def _has_lambda(node: Any) -> bool:
    if isinstance(node, ast.CollectionLambda):
        return True
    if isinstance(node, list):
        return any(_has_lambda(item) for item in node)
    if isinstance(node, ast._Node):
        return any(_has_lambda(getattr(node, item.name)) for item in fields(node))
    return False


def _parse(text: str) -> ast._Node:
    try:
        return _parse_once(text)
    except ParsingException as exc:
        # A one-item `in` list, "(x)", is OData; odata-query wants "(x,)". Retried only after a failure,
        # so a filter that parses is never rewritten.
        retry = _SINGLE_ITEM_IN.sub(r"\1\2,\3", text)
        if retry != text:
            with contextlib.suppress(ODataException):
                return _parse_once(retry)
        raise _syntax_error(text, exc) from None


def _parse_once(text: str) -> ast._Node:
    try:
        return cast("ast._Node", ODataParser().parse(ODataLexer().tokenize(text)))
    except TokenizingException as exc:
        position = exc.token.index
        if str(exc.token.value).startswith("'"):
            raise ODataError(
                f"There is an unterminated string literal at position {position} in '{text}'."
            ) from None
        raise ODataError(
            f"Syntax error: character '{text[position]}' is not valid at position {position} in '{text}'."
        ) from None
    except UnknownFunctionException as exc:
        raise ODataError(
            f"An unknown function with name '{exc.function_name}' was found. This may also be a function "
            "import or a key lookup on a navigation property, which is not allowed."
        ) from None
    except ArgumentCountException as exc:
        raise ODataError(
            f"No function signature for the function with name '{exc.function_name}' matches the specified "
            "arguments."
        ) from None


def _syntax_error(text: str, exc: ParsingException) -> ODataError:
    position = len(text) if exc.token is None else exc.token.index
    if _OPERATOR_WORD.fullmatch(text[position:].strip()):  # nothing, or an operator with nothing after it
        return ODataError(f"Expression expected at position {len(text)} in '{text}'.")
    return ODataError(f"Syntax error at position {position} in '{text}'.")


def compile_filter(
    text: str, fields: Mapping[str, FieldKind], entity_type: str, *, or_across_fields: bool = False
) -> Matcher:
    """A predicate over stored entities for a ``$filter`` value; raises `ODataError`.

    An ``or`` between conditions on different properties is refused, as Business Central does
    (`OR_ACROSS_FIELDS`); ``or_across_fields=True`` evaluates it (the grammar's tests use it).
    """
    text = text.strip()
    if not text:
        raise ODataError("The $filter expression must not be empty.")
    tree = _parse(text)
    if _has_lambda(tree):
        # Documented: Business Central ignores a filter expression with lambda operators (any, all).
        return lambda record: True
    compiler = _FilterCompiler(fields, entity_type, or_across_fields=or_across_fields)
    return compiler.predicate(tree).test


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
