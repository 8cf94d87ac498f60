"""Building blocks shared by the sandboxes' query languages (Salesforce SOQL, NetSuite SuiteQL and ``q``).

Each dialect keeps its own tokenizer, grammar and error texts in its own module; what lives here is the
machinery they have in common, parameterised where the dialects differ only by a setting:

- `Token` and `TokenParser`, the cursor over a token list that every recursive-descent parser here uses
  (peek / advance / keyword tests / ``expect``, sort direction and ``NULLS FIRST|LAST``);
- `QueryError`, the common base of the dialects' error types;
- `Not`, `And` and `Or`, the syntax-tree connectives, generic in the dialect's condition type;
- `compare_values`, `like_regex` and `sort_rows`, the evaluation helpers: comparison operators, LIKE
  patterns (escape character and case sensitivity chosen by the caller) and ORDER BY with null placement.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "And",
    "LikeEscapeError",
    "Not",
    "Or",
    "QueryError",
    "SortSpec",
    "Token",
    "TokenParser",
    "compare_values",
    "like_regex",
    "sort_rows",
]

ConditionT = TypeVar("ConditionT")
ItemT = TypeVar("ItemT")
RowT = TypeVar("RowT")


class QueryError(Exception):
    """A query the vendor would reject; `message` is the text its API answers with."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------------------------------------------
# Tokens and the parser cursor
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """One token: `kind` is the dialect's token kind (every dialect has ``ident`` and ``eof``)."""

    kind: str
    text: str
    pos: int
    # Decoded value for literals; for SOQL strings also the raw text between the quotes (LIKE needs it).
    value: Any = None
    raw: str = ""


class TokenParser(ABC):
    """A cursor over a token list that ends with an ``eof`` token; dialects add their grammar on top.

    Subclasses say how an unexpected token is reported (`unexpected`) and what separates list items
    (`at_separator`); keywords are identifiers compared case-insensitively, as in every dialect here.
    """

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0

    @abstractmethod
    def unexpected(self, token: Token | None = None) -> Exception:
        """The error for `token` (default: the current one) where the grammar has no place for it."""

    @abstractmethod
    def at_separator(self) -> bool:
        """True when the current token separates the items of a list (a comma in every dialect)."""

    def peek(self, ahead: int = 0) -> Token:
        # Reading past the end keeps answering the eof token, so lookahead never needs a bounds check.
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def is_keyword(self, word: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "ident" and token.text.upper() == word

    def accept_keyword(self, word: str) -> bool:
        if self.is_keyword(word):
            self.advance()
            return True
        return False

    def expect_keyword(self, word: str) -> Token:
        if not self.is_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect(self, kind: str) -> Token:
        if self.peek().kind != kind:
            raise self.unexpected()
        return self.advance()

    def integer(self) -> int:
        """A non-negative integer literal (LIMIT, OFFSET, TOP, FETCH ... ROWS)."""
        token = self.peek()
        if token.kind != "number" or not isinstance(token.value, int) or token.value < 0:
            raise self.unexpected()
        self.advance()
        return int(token.value)

    def separated(self, item: Callable[[], ItemT]) -> list[ItemT]:
        """One or more `item`s with separators between them."""
        items = [item()]
        while self.at_separator():
            self.advance()
            items.append(item())
        return items

    def descending(self) -> bool:
        """An optional ``ASC`` / ``DESC``; True for ``DESC``."""
        if self.accept_keyword("DESC"):
            return True
        self.accept_keyword("ASC")
        return False

    def nulls_first(self) -> bool | None:
        """An optional ``NULLS FIRST`` / ``NULLS LAST``; None when absent (the dialect's default applies)."""
        if not self.accept_keyword("NULLS"):
            return None
        if self.accept_keyword("FIRST"):
            return True
        self.expect_keyword("LAST")
        return False


# ---------------------------------------------------------------------------------------------------------
# Syntax-tree connectives
# ---------------------------------------------------------------------------------------------------------
# Each dialect has its own leaf conditions; it closes the recursion with an alias such as
# ``Condition = Compare | Not["Condition"] | And["Condition"] | Or["Condition"]``.


@dataclass(frozen=True, slots=True)
class Not(Generic[ConditionT]):
    operand: ConditionT


@dataclass(frozen=True, slots=True)
class And(Generic[ConditionT]):
    operands: tuple[ConditionT, ...]


@dataclass(frozen=True, slots=True)
class Or(Generic[ConditionT]):
    operands: tuple[ConditionT, ...]


# ---------------------------------------------------------------------------------------------------------
# Evaluation helpers
# ---------------------------------------------------------------------------------------------------------


def compare_values(op: str, left: Any, right: Any) -> bool:
    """Apply ``= != < <= > >=`` to two values; an ordering against None is false, never an error."""
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left is None or right is None:
        return False
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


class LikeEscapeError(ValueError):
    """A LIKE pattern that ends with its escape character, so the escape has nothing to escape."""


def like_regex(
    pattern: str,
    escape: str | None,
    *,
    ignore_case: bool,
    unescape: Mapping[str, str] | None = None,
) -> re.Pattern[str]:
    """Compile a LIKE pattern (``%`` any run, ``_`` any one character) to a regex for ``fullmatch``.

    `escape` makes the next character literal; `unescape` maps an escaped character to what it stands
    for (SOQL's ``\\n`` is a newline), an unmapped one standing for itself. Raise `LikeEscapeError` when
    the pattern ends with the escape character.
    """
    parts: list[str] = []
    pos = 0
    while pos < len(pattern):
        char = pattern[pos]
        if escape is not None and char == escape:
            if pos + 1 >= len(pattern):
                raise LikeEscapeError(pattern)
            escaped = pattern[pos + 1]
            parts.append(re.escape(unescape.get(escaped, escaped) if unescape is not None else escaped))
            pos += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        pos += 1
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags)


@dataclass(frozen=True, slots=True)
class SortSpec(Generic[RowT]):
    """One ORDER BY key: `value` gives a row's sort value (None for NULL)."""

    value: Callable[[RowT], Any]
    descending: bool
    nulls_first: bool


def sort_rows(rows: list[RowT], keys: Sequence[SortSpec[RowT]]) -> None:
    """Sort `rows` in place by `keys`, the first key the most significant."""
    # Stable sorts from the least significant key up give a multi-key ORDER BY.
    for key in reversed(keys):
        rows.sort(key=_null_ranked(key), reverse=key.descending)


def _null_ranked(key: SortSpec[RowT]) -> Callable[[RowT], tuple[int, Any]]:
    # Rank NULLs apart from values so the two are never compared; reverse=True flips the ranks too.
    null_rank = 0 if key.nulls_first != key.descending else 2
    value_of = key.value

    def sort_key(row: RowT) -> tuple[int, Any]:
        value = value_of(row)
        return (null_rank, 0) if value is None else (1, value)

    return sort_key
