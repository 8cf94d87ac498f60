"""How deep a JSON document may nest, checked on the raw bytes before any parser sees them.

msgspec and the standard library parse nested arrays and objects by recursion: a body of a thousand ``[``
raises ``RecursionError`` inside the parser, which nothing maps to a client error. No document Stratum or a
vendor exchanges nests more than a dozen levels, so anything past ``MAX_JSON_DEPTH`` is refused up front:
a request as a 400 problem, a vendor answer as a 502.

The check works on bytes with C-speed passes (count, regex, translate, replace) and only then walks the
runs of brackets that are left, so a 1 MB body costs milliseconds; most bodies stop at the first count.
"""

from __future__ import annotations

import re

__all__ = ["MAX_JSON_DEPTH", "json_depth", "json_too_deep"]

#: The deepest nesting of arrays and objects accepted, in a request or a vendor answer.
MAX_JSON_DEPTH = 64

# A JSON string (unrolled: runs of plain bytes, each escape a backslash and any byte): brackets inside
# strings are text, not nesting. For valid JSON this finds exactly the strings the parser will; for invalid
# JSON the parser stops at its first error, before any nesting this pass could have misread.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_PARENS = bytes.maketrans(b"[{]}", b"(())")
_RUNS = re.compile(rb"\(+|\)+")


def json_depth(document: bytes) -> int:
    """The deepest nesting of arrays and objects in ``document`` (0 for a scalar).

    Exact for valid JSON; for invalid JSON at least as deep as any parser gets before it fails."""
    if b'"' in document:
        document = _STRING.sub(b"", document)
    brackets = document.translate(None, _NOT_BRACKETS).translate(_PARENS)
    # Each pass takes the innermost level off every branch at once, at C speed. Passes go on while they
    # shrink the brackets by an eighth or more (a wide, shallow document); deep chains are walked as runs.
    pruned = 0
    while True:
        shorter = brackets.replace(b"()", b"")
        removed = len(brackets) - len(shorter)
        if removed == 0:
            break
        pruned += 1
        brackets = shorter
        if removed < len(brackets) // 8:
            break
    depth = deepest = 0
    for run in _RUNS.finditer(brackets):
        length = run.end() - run.start()
        if brackets[run.start()] == ord("("):
            depth += length
            deepest = max(deepest, depth)
        else:
            depth -= length
    return pruned + deepest


def json_too_deep(document: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``document`` nests arrays and objects deeper than ``limit``."""
    # Each level needs an opener: with no more openers than the limit, nothing else need be read.
    if document.count(b"[") + document.count(b"{") <= limit:
        return False
    return json_depth(document) > limit
