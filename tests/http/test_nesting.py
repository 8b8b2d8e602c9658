"""The pre-decode nesting bound agrees with a plain character scan on random JSON texts."""

from __future__ import annotations

import random
import signal

import msgspec

from ff.http._nesting import nesting_exceeds


def reference_depth(text: bytes) -> int:
    """Deepest bracket level outside strings, one byte at a time."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def random_value(rng: random.Random, depth: int) -> object:
    roll = rng.random()
    if depth > 0 and roll < 0.35:
        return [random_value(rng, depth - 1) for _ in range(rng.randrange(3))]
    if depth > 0 and roll < 0.7:
        return {rng.choice(["a", "[", "}{", '"']): random_value(rng, depth - 1)
                for _ in range(rng.randrange(3))}
    return rng.choice(["", "[[[", '\\"{', "]]}}", "x\\", 7, None, "é[", "\n{"])


def test_agrees_with_a_character_scan() -> None:
    rng = random.Random(18)
    for _ in range(2000):
        text = msgspec.json.encode(random_value(rng, rng.randrange(1, 12)))
        depth = reference_depth(text)
        for limit in (0, 1, depth - 1, depth, depth + 1):
            assert nesting_exceeds(text, limit) == (depth > limit), (text, limit)


def test_brackets_inside_strings_do_not_count() -> None:
    text = b'{"a": "%s", "b": "\\"[[["}' % (b"[{" * 100)
    assert not nesting_exceeds(text, 1)
    assert nesting_exceeds(b'{"a": [[]]}', 2) and not nesting_exceeds(b'{"a": [[]]}', 3)


def test_an_unterminated_string_full_of_escaped_quotes_is_scanned_in_linear_time() -> None:
    """A 1 MiB body (the largest any route takes) that opens a string and never closes
    it: the old pattern restarted at every quote and took hours; the alarm turns a
    regression into a failure instead of a hung suite."""
    body = b'{"a": "' + b'\\"[' * (1024 * 1024 // 3)

    def too_slow(signum: int, frame: object) -> None:
        raise TimeoutError("nesting check is not linear")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(10)
    try:
        assert nesting_exceeds(body, 32) is False  # everything after the quote is string
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
