"""Reply decoding at the library boundary: envelopes, Structs by position, defaults."""

from __future__ import annotations

import msgspec
import pytest

from ff.core.errors import BackendError, NotFoundError
from ff.core.records import LeaseHandle
from ff.script.library import Reply, parse_envelope
from ff.transient import is_transient


class _Sample(msgspec.Struct, frozen=True):
    name: str
    count: int
    raw: bytes
    maybe: int | None = None
    pairs: dict[str, str] = msgspec.field(default_factory=dict)


def test_fields_decode_by_position_with_their_types() -> None:
    reply = parse_envelope([1, b"OK", b"x", b"7", b"\x00\xff", b"", [b"k", b"v"]])
    assert reply.status == "OK"
    assert reply.into(_Sample) == _Sample("x", 7, b"\x00\xff", None, {"k": "v"})


def test_trailing_fields_left_out_take_their_defaults() -> None:
    assert Reply("OK", [b"x", 1, "text"]).into(_Sample) == _Sample("x", 1, b"text")


def test_a_reply_short_of_required_fields_is_an_invalid_reply_not_a_retry() -> None:
    with pytest.raises(BackendError, match="invalid_reply") as info:
        Reply("OK", [b"x"]).into(_Sample)
    assert not is_transient(info.value)


def test_business_errors_become_typed_exceptions() -> None:
    with pytest.raises(NotFoundError, match="execution_not_found"):
        parse_envelope([0, b"execution_not_found", b"{fp:1}:x"])


def test_the_lease_reply_decodes_into_a_lease_handle() -> None:
    values = [b"{fp:1}:e", b"l", b"2", b"1000", b"a", b"0", b"initial", b"kind", b"ns",
              b"json", b"{}", b"default", b"5", b"0", [b"app.team", b"a"]]
    lease = Reply("OK", values).into(LeaseHandle)
    assert (lease.execution_id, lease.lease_epoch, lease.expires_at) == ("{fp:1}:e", "2", 1000)
    assert (lease.payload, lease.tags) == (b"{}", {"app.team": "a"})


def test_a_struct_with_a_type_the_boundary_cannot_read_is_refused() -> None:
    class Odd(msgspec.Struct):
        when: float

    with pytest.raises(TypeError, match="no reply converter"):
        Reply("OK", [b"1.5"]).into(Odd)
