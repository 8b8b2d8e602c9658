"""The RESP3 reply parser fed random valid replies cut at random points, and the same
streams with a frame's type byte or a length made invalid: every reply before the damage
comes out exactly right, and the damage itself is a ProtocolError (or a wait for more
bytes), never a wrong value handed to a caller. Seeded generator, no extra dependency."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from ff.resp import errors
from ff.resp._parser import NEED_DATA, ReplyReader

pytestmark = pytest.mark.compat

STREAMS = 600
INVALID_TYPES = b"@^&Q\x00\xff0"


def frame(rng: random.Random, depth: int = 0) -> tuple[bytes, Any]:
    """One RESP3 frame and the value the parser must return for it."""
    kind = rng.randrange(12 if depth < 3 else 8)
    if kind == 0:
        text = bytes(rng.choice(b"abcXYZ09 -_") for _ in range(rng.randrange(12)))
        return b"+" + text + b"\r\n", text
    if kind == 1:
        data = rng.randbytes(rng.choice([0, 1, 5, 300, 5000]))
        return b"$%d\r\n%s\r\n" % (len(data), data), data
    if kind == 2:
        n = rng.randrange(-10**12, 10**12)
        return b":%d\r\n" % n, n
    if kind == 3:
        value = rng.choice([0.5, -2.25, 1e10, 3.0])
        return b",%r\r\n" % value, value
    if kind == 4:
        value = rng.random() < 0.5
        return b"#t\r\n" if value else b"#f\r\n", value
    if kind == 5:
        return b"_\r\n", None
    if kind == 6:
        n = rng.randrange(-10**30, 10**30)
        return b"(%d\r\n" % n, n
    if kind == 7:
        data = rng.randbytes(rng.randrange(20))
        return b"=%d\r\ntxt:%s\r\n" % (len(data) + 4, data), data
    if kind in (8, 9):
        items = [frame(rng, depth + 1) for _ in range(rng.randrange(5))]
        head = b"*" if kind == 8 else b"~"
        return (head + b"%d\r\n" % len(items) + b"".join(f for f, _ in items),
                [v for _, v in items])
    if kind == 10:
        keys = [b"k%d" % i for i in range(rng.randrange(4))]
        values = [frame(rng, depth + 1) for _ in keys]
        body = b"".join(b"$%d\r\n%s\r\n" % (len(k), k) + f
                        for k, (f, _) in zip(keys, values, strict=True))
        mapping = {k: v for k, (_, v) in zip(keys, values, strict=True)}
        return b"%%%d\r\n" % len(keys) + body, mapping
    inner, value = frame(rng, depth + 1)
    return b"|1\r\n+meta\r\n:1\r\n" + inner, value  # an attribute is dropped


def parse(stream: bytes, cuts: list[int]) -> tuple[list[Any], BaseException | None]:
    reader = ReplyReader()
    replies: list[Any] = []
    bounds = [0, *sorted(cuts), len(stream)]
    try:
        for start, end in itertools.pairwise(bounds):
            reader.feed(stream[start:end])
            while (reply := reader.gets()) is not NEED_DATA:
                replies.append(reply)
    except errors.ProtocolError as exc:
        return replies, exc
    return replies, None


def split_points(rng: random.Random, size: int) -> list[int]:
    return [rng.randrange(size + 1) for _ in range(rng.choice([0, 1, 3, 20, size]))]


def test_random_splits_give_the_right_values() -> None:
    rng = random.Random(1601)
    for _ in range(STREAMS):
        frames = [frame(rng) for _ in range(rng.randrange(1, 8))]
        stream = b"".join(f for f, _ in frames)
        replies, error = parse(stream, split_points(rng, len(stream)))
        assert error is None
        assert replies == [v for _, v in frames]


@pytest.mark.parametrize("damage", ["type", "length"])
def test_damaged_streams_never_give_a_wrong_value(damage: str) -> None:
    rng = random.Random(1602)
    errors_seen = 0
    for _ in range(STREAMS):
        frames = [frame(rng) for _ in range(rng.randrange(1, 6))]
        victim = rng.randrange(len(frames))
        good = b"".join(f for f, _ in frames[:victim])
        bad = frames[victim][0]
        if damage == "type":
            bad = bytes([rng.choice(INVALID_TYPES)]) + bad[1:]
        elif bad[:1] not in b"$*~%:(=|" or bad[:1] == b"":
            continue  # no length or number to damage
        else:
            line_end = bad.index(b"\r\n")
            bad = bad[:1] + b"x" + bad[1:line_end] + b"\r\n" + bad[line_end + 2:]
        stream = good + bad + b"".join(f for f, _ in frames[victim + 1:])
        replies, error = parse(stream, split_points(rng, len(stream)))
        expected = [v for _, v in frames[:victim]]
        assert replies[:victim] == expected
        assert len(replies) == victim, (stream, replies)
        errors_seen += error is not None
    assert errors_seen > STREAMS // 3


def test_an_empty_chunk_does_not_hide_a_big_number() -> None:
    """Found by the fuzzer: an empty chunk shortened the remembered tail to "\\n", so a
    big number right after it went to hiredis and came back as bytes."""
    replies, error = parse(b"*1\r\n(123\r\n", [4, 4])
    assert (replies, error) == ([[123]], None)
