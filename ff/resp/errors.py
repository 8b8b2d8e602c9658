"""The exception hierarchy of the RESP client.

Every error carries `.retryable` so callers (the engine's retry loops, a future cluster
router) can decide whether to try again without matching on message text.
"""

from __future__ import annotations

import builtins

# Server error prefixes that describe a transient state: the same command may succeed
# later (server loading, a script running, a failover or resharding in progress, memory
# full under `noeviction`: an OOM refusal runs nothing, so repeating it is safe).
RETRYABLE_PREFIXES = frozenset(
    {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "MOVED", "ASK",
     "READONLY", "NOREPLICAS", "OOM"}
)
AUTH_PREFIXES = frozenset({"WRONGPASS", "NOAUTH", "NOPERM"})


class RespError(Exception):
    """Base class of every error raised by `ff.resp`."""

    retryable: bool = False


class ConnectionError(RespError, builtins.ConnectionError):
    """The connection could not be made or was lost; the command may not have run."""

    retryable = True


class ClientClosedError(ConnectionError):
    """The client was used after `aclose()`: retrying cannot help."""

    retryable = False


class TimeoutError(RespError, builtins.TimeoutError):
    """No reply within the deadline; the connection it was sent on has been discarded."""

    retryable = True


class ProtocolError(RespError):
    """The server sent bytes that are not valid RESP: the connection is unusable."""


class ResponseError(RespError):
    """An error reply from the server.

    `prefix` is the leading upper-case code ("ERR", "WRONGTYPE", "MOVED", ...), or "" when
    the reply has none; `message` is the text after it; `str(exc)` is the whole reply.
    Instances also appear *in place* inside pipeline and EXEC results.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        head, _, rest = text.partition(" ")
        if head and head.isupper():
            self.prefix, self.message = head, rest
        else:
            self.prefix, self.message = "", text
        self.retryable = self.prefix in RETRYABLE_PREFIXES

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.args == self.args

    def __hash__(self) -> int:
        return hash((type(self), self.args))


class AuthenticationError(ResponseError):
    """The server refused the credentials (or demands some)."""


def response_error(text: str) -> ResponseError:
    """Build the ResponseError (or subclass) for an error reply's text.

    Passed to hiredis as its `replyError` factory, so error replies become values that
    pipelines can return in place instead of exceptions that abort parsing.
    """
    head = text.partition(" ")[0]
    if head in AUTH_PREFIXES:
        return AuthenticationError(text)
    return ResponseError(text)
