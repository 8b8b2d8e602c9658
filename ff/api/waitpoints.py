"""Suspension, waitpoints and signals: the Server methods of this area land here
(list_pending_waitpoints, get_waitpoint_token, deliver_signal, rotate_waitpoint_secret)."""

from __future__ import annotations

from ff.api._parts import ServerParts


class WaitpointsApi(ServerParts):
    """No methods yet."""
