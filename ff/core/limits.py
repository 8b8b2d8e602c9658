"""Numeric limits that Python and the Lua library both enforce, in one place.

The Lua library receives these through its generated `facts` area (ff/script/_source.py),
so a change here reaches both sides.
"""

from __future__ import annotations

# Reclaims allowed when the policy names no `max_reclaim_count`.
RECLAIM_CAP_DEFAULT = 100
# Bounds of a claim grant's time to live.
GRANT_TTL_MIN_MS = 1
GRANT_TTL_MAX_MS = 60_000
# Priorities are clamped to 0..PRIORITY_MAX (higher runs first).
PRIORITY_MAX = 9000
# Replays allowed when the policy names no `max_replay_count`.
REPLAY_CAP_DEFAULT = 10
