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
# Nodes the stage-time cycle check walks before it refuses the edge as a cycle.
CYCLE_CHECK_MAX_NODES = 1000
# Edges one resolution call (with its skip cascade) settles; the rest are left to the
# completion notifications of the skipped members and the dependency reconciler.
RESOLVE_MAX_EDGES = 5000
