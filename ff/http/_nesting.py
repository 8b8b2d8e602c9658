"""A cheap bound on how deeply a JSON text nests, checked before it is decoded.

What lives here: `nesting_exceeds(body, limit)`. msgspec decodes nested arrays and objects
recursively, so a body nested a thousand levels deep (even under a field that is ignored)
exhausts the interpreter's recursion limit. Counting is done with bytes methods and a regex,
all in C: most bodies are decided by counting `[` and `{` alone, and only a body with more
openers than the limit pays for removing its strings and summing the bracket steps.

The answer is only meaningful for well-formed JSON; for anything else the decoder that runs
next reports the syntax error (a malformed body may also be called too deep, which is a 400
all the same).
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate

__all__ = ["nesting_exceeds"]

# A JSON string: quote, then runs of plain bytes or backslash escapes, then the closing
# quote if there is one. An unterminated string runs to the end of the body in one match:
# requiring the closing quote made the search start again at every quote inside it, which
# is quadratic on a body full of `\"` (seconds for a few KiB, inside the event loop).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
# Keep only brackets: openers become +1, closers -1 (0xFF read as a signed byte).
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _openers(data: bytes) -> int:
    return data.count(b"[") + data.count(b"{")


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """True if arrays and objects in `body` nest more than `limit` levels deep.

    The top-level object is level 1; brackets inside strings do not count.
    """
    if _openers(body) <= limit:
        return False
    outside_strings = _STRING.sub(b"", body)
    if _openers(outside_strings) <= limit:
        return False
    steps = array("b", outside_strings.translate(_STEPS, _NOT_BRACKETS))
    return max(accumulate(steps), default=0) > limit
