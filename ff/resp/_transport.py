"""Opening a ready-to-use stream: TCP, TLS or unix socket, then the RESP3 handshake.

The handshake is one write: `HELLO 3 [AUTH user pass] [SETNAME name]`, plus `SELECT db`
when db != 0, and it finishes before the stream is handed over, so the multiplexed
connection and the pub/sub reader only ever see replies to their own commands.
"""

from __future__ import annotations

import ssl
from typing import Any

import trio

from ff.resp import errors
from ff.resp._commands import encode
from ff.resp._parser import NEED_DATA, PushNotification, ReplyReader
from ff.resp._url import ConnectionParams

RECEIVE_SIZE = 65536


async def open_transport(params: ConnectionParams) -> tuple[trio.abc.Stream, ReplyReader]:
    """Connect and handshake within `params.connect_timeout`.

    Raises `errors.AuthenticationError` for refused credentials, `errors.ProtocolError`
    for a server without RESP3, and `errors.ConnectionError` for everything else
    (refused, unreachable, timed out, closed during the handshake).
    """
    stream: trio.abc.Stream | None = None
    try:
        with trio.fail_after(params.connect_timeout):
            stream = await _open_stream(params)
            reader = ReplyReader()
            await _handshake(stream, reader, params)
            return stream, reader
    except BaseException as exc:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        if isinstance(exc, trio.TooSlowError):
            raise errors.ConnectionError(
                f"connecting to {params.address} timed out after {params.connect_timeout}s"
            ) from None
        if isinstance(exc, errors.RespError):
            raise
        if isinstance(exc, OSError | trio.BrokenResourceError | ssl.SSLError):
            raise errors.ConnectionError(
                f"cannot connect to {params.address}: {describe(exc)}"
            ) from exc
        raise


def describe(exc: BaseException | None) -> str:
    """Readable reason for an I/O failure; trio.BrokenResourceError keeps it in __cause__."""
    if exc is None:
        return "unknown reason"
    return str(exc) or str(exc.__cause__ or "") or type(exc).__name__


async def _open_stream(params: ConnectionParams) -> trio.abc.Stream:
    if params.unix_path:
        return await trio.open_unix_socket(params.unix_path)
    stream: trio.abc.Stream = await trio.open_tcp_stream(params.host, params.port)
    if params.tls:
        context = params.ssl_context or ssl.create_default_context()
        tls = trio.SSLStream(stream, context, server_hostname=params.host)
        await tls.do_handshake()
        stream = tls
    return stream


def _handshake_frames(params: ConnectionParams) -> tuple[bytes, int]:
    """The handshake bytes and how many replies they produce."""
    hello: list[Any] = ["HELLO", 3]
    if params.password is not None:
        hello += ["AUTH", params.username or "default", params.password]
    if params.client_name:
        hello += ["SETNAME", params.client_name]
    frames = encode(tuple(hello))
    if params.db:
        return frames + encode(("SELECT", params.db)), 2
    return frames, 1


async def _handshake(
    stream: trio.abc.Stream, reader: ReplyReader, params: ConnectionParams
) -> None:
    frames, count = _handshake_frames(params)
    await stream.send_all(frames)
    replies = await _read_replies(stream, reader, count)
    hello = replies[0]
    if isinstance(hello, errors.AuthenticationError):
        raise hello
    if isinstance(hello, errors.ResponseError):
        raise errors.ProtocolError(f"{params.address} does not speak RESP3: HELLO 3 -> {hello}")
    if count == 2 and isinstance(replies[1], errors.ResponseError):
        raise errors.ConnectionError(f"SELECT {params.db} on {params.address}: {replies[1]}")


async def _read_replies(stream: trio.abc.Stream, reader: ReplyReader, count: int) -> list[Any]:
    """Read exactly `count` replies (push frames are skipped), for the handshake."""
    replies: list[Any] = []
    while True:
        while (reply := reader.gets()) is not NEED_DATA:
            if type(reply) is not PushNotification:
                replies.append(reply)
                if len(replies) == count:
                    return replies
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            raise errors.ConnectionError("the server closed the connection")
        reader.feed(bytes(data))
