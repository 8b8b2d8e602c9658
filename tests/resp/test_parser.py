"""Reply decoding, fed raw bytes: the frame types hiredis mishandles and arbitrary splits."""

from __future__ import annotations

import random

import pytest

from ff.resp import errors
from ff.resp._parser import NEED_DATA, PushNotification, ReplyReader

# One of every frame type, nested where it matters, including payloads that look like
# special frames ("\r\n(" inside a bulk string) and the boolean false.
STREAM = (
    b"+OK\r\n#f\r\n#t\r\n:-42\r\n,1.5\r\n,inf\r\n_\r\n$-1\r\n*-1\r\n"
    b"(123456789012345678901234567890\r\n"
    b"!21\r\nSYNTAX invalid syntax\r\n"
    b"|1\r\n+key-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n$4\r\nreal\r\n"
    b"=15\r\ntxt:Some string\r\n"
    b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
    b"%2\r\n+a\r\n:1\r\n+b\r\n~2\r\n:1\r\n:2\r\n"
    b"*4\r\n(-7\r\n|1\r\n+k\r\n+v\r\n:7\r\n-ERR nested\r\n!3\r\nBAD\r\n"
    b"$4\r\n\r\n(x\r\n"
    b"*0\r\n%0\r\n+done\r\n"
)
EXPECTED = [
    b"OK", False, True, -42, 1.5, float("inf"), None, None, None,
    123456789012345678901234567890,
    errors.ResponseError("SYNTAX invalid syntax"),
    b"real",
    b"Some string",
    PushNotification([b"message", b"ch", b"hi"]),
    {b"a": 1, b"b": [1, 2]},
    [-7, 7, errors.ResponseError("ERR nested"), errors.ResponseError("BAD")],
    b"\r\n(x",
    [], {}, b"done",
]


def parse(chunks: list[bytes]) -> list[object]:
    reader = ReplyReader()
    replies = []
    for chunk in chunks:
        reader.feed(chunk)
        while (reply := reader.gets()) is not NEED_DATA:
            replies.append(reply)
    return replies


def split(data: bytes, rng: random.Random, pieces: int) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), pieces))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def test_every_frame_type_decodes() -> None:
    replies = parse([STREAM])
    assert replies == EXPECTED
    assert type(replies[1]) is bool and replies[1] is False
    assert type(replies[13]) is PushNotification
    assert type(replies[10]) is errors.ResponseError and replies[10].prefix == "SYNTAX"


def test_any_split_gives_the_same_replies() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        assert parse(split(STREAM, rng, rng.randint(1, 40))) == EXPECTED


def test_hiredis_resumes_after_special_frames() -> None:
    """Plain traffic after a special frame goes back to hiredis and still decodes."""
    plain = b"".join(b"$3\r\n%03d\r\n" % i for i in range(100))
    replies = parse([plain[:45], b"(5\r\n" + plain[45:], plain])
    assert replies[:4] == [b"000", b"001", b"002", b"003"]
    assert 5 in replies
    assert len(replies) == 201
    assert replies[-1] == b"099"


def test_special_frame_inside_a_partial_reply_held_by_hiredis() -> None:
    """A big number arriving while hiredis holds half an array: the array is re-parsed."""
    replies = parse([b"+a\r\n*3\r\n:1\r\n", b":2\r\n", b"(99\r\n+b\r\n"])
    assert replies == [b"a", [1, 2, 99], b"b"]


def test_long_unaligned_streams_stay_bounded() -> None:
    """Chunks that never end on a reply boundary still decode (past the replay cap)."""
    value = bytes(range(256)) * 400  # 100 KiB, contains no CRLF
    frame = b"$%d\r\n%s\r\n" % (len(value), value)
    stream = frame * 40
    chunks = [stream[i : i + 65000] for i in range(0, len(stream), 65000)]
    assert parse(chunks) == [value] * 40


def test_error_factory_classifies_prefixes() -> None:
    moved, auth, plain = parse([b"-MOVED 3999 127.0.0.1:6381\r\n-WRONGPASS nope\r\n-oops\r\n"])
    assert (moved.prefix, moved.message, moved.retryable) == ("MOVED", "3999 127.0.0.1:6381", True)
    assert isinstance(auth, errors.AuthenticationError) and not auth.retryable
    assert (plain.prefix, plain.message, str(plain)) == ("", "oops", "oops")


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(errors.ProtocolError):
        parse([b"?what\r\n"])
    with pytest.raises(errors.ProtocolError):
        parse([b"(1\r\n?what\r\n"])  # the slow path too


def test_unhashable_map_key_is_a_protocol_error() -> None:
    with pytest.raises(errors.ProtocolError):
        parse([b"%1\r\n*1\r\n:1\r\n:2\r\n"])


def test_bad_lengths_are_protocol_errors() -> None:
    with pytest.raises(errors.ProtocolError):
        parse([b"(1\r\n$abc\r\n"])
    with pytest.raises(errors.ProtocolError):
        parse([b"*x\r\n"])
    with pytest.raises(errors.ProtocolError):
        parse([b"(1\r\n%1\r\n*1\r\n:1\r\n:2\r\n"])  # unhashable key, slow path
