"""Attempt output streams: the Server methods of this area land here
(read_attempt_stream, tail_attempt_stream)."""

from __future__ import annotations

from ff.api._parts import ServerParts


class StreamsApi(ServerParts):
    """No methods yet."""
