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
# Capability lists (required by an execution, offered by a worker): tokens and CSV bytes.
CAPS_MAX_TOKENS = 256
CAPS_MAX_BYTES = 4096
# Largest retry, reclaim, replay or signal count a policy may name.
POLICY_COUNT_MAX = 1_000_000
# Replays allowed when the policy names no `max_replay_count`.
REPLAY_CAP_DEFAULT = 10

# Attempt streams (lua/stream.lua, ff/api/streams.py).
# Largest payload of one frame, in bytes.
STREAM_FRAME_MAX_BYTES = 65_536
# Longest frame_type and correlation_id, in bytes.
STREAM_FRAME_TYPE_MAX_BYTES = 64
STREAM_CORRELATION_ID_MAX_BYTES = 256
# Durable retention when the policy names none (entries kept per attempt stream).
STREAM_RETENTION_MAXLEN_DEFAULT = 10_000
# Largest retention a policy may ask for.
STREAM_RETENTION_MAXLEN_MAX = 1_000_000
# best_effort: the adaptive MAXLEN stays within these bounds; the EMA weight of the newest
# append interval; the TTL used when the caller gives none.
STREAM_BEST_EFFORT_MAXLEN_FLOOR = 64
STREAM_BEST_EFFORT_MAXLEN_CEILING = 16_384
STREAM_BEST_EFFORT_EMA_ALPHA_PERMILLE = 200
STREAM_BEST_EFFORT_TTL_DEFAULT_MS = 10_000
# Summary documents: patch nesting depth and the stored document's size, in bytes.
SUMMARY_PATCH_MAX_DEPTH = 16
SUMMARY_MAX_BYTES = 262_144
# Frames one read or tail returns: the REST ceiling and the library's hard cap.
STREAM_READ_LIMIT_MAX = 1_000
STREAM_READ_HARD_CAP = 10_000
# Longest a tail may block, in ms.
STREAM_TAIL_BLOCK_MAX_MS = 30_000
# Nodes the stage-time cycle check walks before it refuses the edge as a cycle.
CYCLE_CHECK_MAX_NODES = 1000
# Edges one resolution call (with its skip cascade) settles; the rest are left to the
# completion notifications of the skipped members and the dependency reconciler.
RESOLVE_MAX_EDGES = 5000

# Budgets: at most this many dimensions each; a limit or a reported amount is an integer
# in 0..BUDGET_AMOUNT_MAX (a limit of 0 means unlimited); a usage dedup key lives 24 h.
BUDGET_DIMENSIONS_MAX = 64
BUDGET_AMOUNT_MAX = 10**15
BUDGET_DEDUP_TTL_MS = 24 * 3600 * 1000
# Quotas: a window of 0 seconds means this default; limits are 0 (unlimited) or more, up to
# QUOTA_LIMIT_MAX; a refused admission's retry hint gets up to this much random jitter.
QUOTA_WINDOW_DEFAULT_S = 60
QUOTA_WINDOW_MAX_S = 86_400
QUOTA_LIMIT_MAX = 1_000_000
QUOTA_RETRY_JITTER_MS = 50
# Budgets one execution (or flow) may carry.
BUDGET_IDS_PER_EXECUTION_MAX = 16
