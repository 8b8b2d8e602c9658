-- The execution record and its state: loading it, writing the state vector, and the
-- index bookkeeping every transition shares (lease indexes, terminal sweep, attempt end,
-- stream close, flow notification). The state facts (public state rule, index sets)
-- come from the generated `facts` area, i.e. from ff/core/states.py.
-- @requires util, facts

local fmt, err, is_set, to_int = util.fmt, util.err, util.is_set, util.to_int
local hgetall, tag_of, decode_json = util.hgetall, util.tag_of, util.decode_json
local exec_key, attempt_key, stream_key = util.exec_key, util.attempt_key, util.stream_key
local idx_key, lane_key, worker_leases_key = util.idx_key, util.lane_key, util.worker_leases_key

-- The core fields the hot paths read (HMGET instead of HGETALL of the whole record).
-- A field left out reads as unset, so each list holds every field its function and the
-- shared helpers it reaches (write_state, finish, mark_expired, ...) look at. The first
-- list serves a lease holder's terminal call or renewal (complete, fail, renew).
-- (Written out: the library's load-time code may not call globals such as ipairs.)
local HOLDER_FIELDS = {'execution_id', 'lane_id', 'lifecycle_phase', 'ownership_state',
  'eligibility_state', 'blocking_reason', 'blocking_detail', 'terminal_outcome',
  'attempt_state', 'current_attempt_index', 'current_attempt_id', 'current_lease_id',
  'current_lease_epoch', 'current_worker_id', 'current_worker_instance_id', 'flow_id',
  'priority', 'created_at', 'lease_expires_at', 'lease_revoked_at', 'retry_count',
  'delay_until'}
-- Any claim path (claim_next, fresh, resumed, reclaim) and the head scan before it.
local CLAIM_FIELDS = {'execution_id', 'lane_id', 'lifecycle_phase', 'ownership_state',
  'eligibility_state', 'blocking_reason', 'blocking_detail', 'terminal_outcome',
  'attempt_state', 'current_attempt_index', 'current_attempt_id', 'current_lease_id',
  'current_lease_epoch', 'current_worker_id', 'current_worker_instance_id', 'flow_id',
  'priority', 'created_at', 'lease_expires_at', 'lease_revoked_at',
  'required_capabilities', 'total_attempt_count', 'lease_reclaim_count', 'started_at',
  'execution_kind', 'namespace', 'payload_encoding', 'resume_signal_ids',
  'pending_retry_reason', 'pending_previous_attempt_index', 'pending_replay_reason',
  'pending_replay_requested_by', 'budget_ids', 'quota_policy_id', 'lease_expired_at',
  'lease_revoke_reason', 'delay_until', 'pending_replay_attempt'}

-- Appends (name, '') to the flat list `fields` for each of `names` the core has set: a
-- transition clears only what is there (an absent field reads as unset, like '').
local function clear_set(core, fields, names)
  for _, name in ipairs(names) do
    if is_set(core[name]) then
      fields[#fields + 1] = name
      fields[#fields + 1] = ''
    end
  end
end

local function hmget(key, fields)
  local values = redis.call('HMGET', key, unpack(fields))
  local t = {}
  for i = 1, #fields do
    if values[i] then t[fields[i]] = values[i] end
  end
  return t
end

-- Execution context: the core record (all of it, or only `fields`) plus the names
-- derived from it.
local function load_exec(core_key, eid, fields)
  local core = fields and hmget(core_key, fields) or hgetall(core_key)
  if core.execution_id == nil or core.execution_id ~= eid then return nil end
  local tag = tag_of(core_key)
  return {
    eid = eid, tag = tag, key = core_key, core = core, lane = core.lane_id,
    k = function(suffix) return exec_key(tag, eid, suffix) end,
  }
end

-- A context for an execution about to be created (no record yet).
local function new_exec(core_key, eid, lane)
  local tag = tag_of(core_key)
  return {eid = eid, tag = tag, key = core_key, lane = lane, core = {},
    k = function(suffix) return exec_key(tag, eid, suffix) end}
end

local function not_found(eid)
  return err('execution_not_found', eid)
end

-- The four details a client needs to recognise its own earlier terminal call.
local function not_active(core)
  return err('execution_not_active', core.terminal_outcome or '', core.current_lease_epoch or '',
    core.lifecycle_phase or '', core.current_attempt_id or '')
end

-- ff.core.states.public_state_of, as the table generated from it.
local function public_state(phase, eligibility, outcome)
  return facts.PUBLIC_STATE[phase .. '|' .. eligibility .. '|' .. outcome] or 'waiting'
end

-- ff.core.states.lane_index_of: the lane index the record's state belongs in, or nil.
local function lane_index_of(core)
  return facts.LANE_INDEX[(core.lifecycle_phase or '') .. '|' .. (core.eligibility_state or '')
    .. '|' .. (core.ownership_state or '')]
end

-- All seven dimensions plus public_state in one HSET. `state` maps dimension -> value
-- (missing = keep); `extra` is a flat field/value list.
local function write_state(ctx, state, now, extra)
  local args = {}
  local merged = {}
  for _, dim in ipairs(facts.STATE_FIELDS) do
    local v = state[dim]
    if v == nil then v = ctx.core[dim] or '' end
    merged[dim] = v
    args[#args + 1] = dim
    args[#args + 1] = v
  end
  local pub = public_state(merged.lifecycle_phase, merged.eligibility_state, merged.terminal_outcome)
  local now_s = fmt(now)
  args[#args + 1] = 'public_state'
  args[#args + 1] = pub
  args[#args + 1] = 'last_transition_at'
  args[#args + 1] = now_s
  args[#args + 1] = 'last_mutation_at'
  args[#args + 1] = now_s
  if extra then
    for i = 1, #extra do args[#args + 1] = extra[i] end
  end
  redis.call('HSET', ctx.key, unpack(args))
  for dim, v in pairs(merged) do ctx.core[dim] = v end
  ctx.core.public_state = pub
  return pub
end

-- Eligible score: highest priority first, FIFO by original creation time within one.
local function eligible_score(core)
  return fmt(-(to_int(core.priority, 0) * 1000000000000) + to_int(core.created_at, 0))
end

local function add_eligible(ctx)
  redis.call('ZADD', lane_key(ctx.tag, ctx.lane, 'eligible'), eligible_score(ctx.core), ctx.eid)
end

-- Back to runnable on `attempt_state`: delayed until `due` (blocking reason
-- `delay_reason`) while that is still ahead, else eligible now. `fields` go into the same
-- HSET (delay_until is added here).
local function requeue(ctx, due, delay_reason, attempt_state, now, fields)
  if due and due > now then
    fields[#fields + 1] = 'delay_until'
    fields[#fields + 1] = fmt(due)
    write_state(ctx, {lifecycle_phase = 'runnable', ownership_state = 'unowned',
      eligibility_state = 'not_eligible_until_time', blocking_reason = delay_reason,
      blocking_detail = '', attempt_state = attempt_state}, now, fields)
    redis.call('ZADD', lane_key(ctx.tag, ctx.lane, 'delayed'), fmt(due), ctx.eid)
  else
    write_state(ctx, {lifecycle_phase = 'runnable', ownership_state = 'unowned',
      eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
      blocking_detail = '', attempt_state = attempt_state}, now, fields)
    add_eligible(ctx)
  end
end

local function history(ctx, event, reason, extra)
  local args = {'XADD', ctx.k('lease:history'), 'MAXLEN', '~', '1000', '*',
    'event', event, 'lease_id', ctx.core.current_lease_id or '',
    'lease_epoch', ctx.core.current_lease_epoch or '',
    'attempt_index', ctx.core.current_attempt_index or '', 'reason', reason or ''}
  if extra then
    for i = 1, #extra do args[#args + 1] = extra[i] end
  end
  redis.call(unpack(args))
end

-- Everything that tracks a held (or expired/revoked) lease. A live lease is never in
-- reclaimable (grant_lease took it out), so only a lost one is removed from there.
local function release_lease_indexes(ctx)
  local core = ctx.core
  redis.call('ZREM', idx_key(ctx.tag, 'lease_expiry'), ctx.eid)
  redis.call('ZREM', idx_key(ctx.tag, 'attempt_timeout'), ctx.eid)
  redis.call('ZREM', lane_key(ctx.tag, ctx.lane, 'active'), ctx.eid)
  if core.ownership_state ~= 'leased' then
    redis.call('ZREM', lane_key(ctx.tag, ctx.lane, 'reclaimable'), ctx.eid)
  end
  if is_set(core.current_worker_instance_id) then
    redis.call('SREM', worker_leases_key(ctx.tag, core.current_worker_instance_id), ctx.eid)
  end
  redis.call('DEL', ctx.k('lease:current'))
end

-- Removal from the indexes a terminal transition must leave. A lease holder ending its
-- own attempt (phase active, leased) can only be in the lease indexes; anything else
-- gets the defensive sweep of every non-terminal lane index.
local function unindex_for_terminal(ctx)
  release_lease_indexes(ctx)
  redis.call('ZREM', idx_key(ctx.tag, 'execution_deadline'), ctx.eid)
  if ctx.core.lifecycle_phase == 'active' and ctx.core.ownership_state == 'leased' then
    return
  end
  for _, name in ipairs(facts.LIVE_LANE_INDEXES) do
    redis.call('ZREM', lane_key(ctx.tag, ctx.lane, name), ctx.eid)
  end
  redis.call('ZREM', idx_key(ctx.tag, 'suspension_timeout'), ctx.eid)
end

-- Close the attempt's output stream, if the attempt ever opened one: the markers on its
-- meta, and a last `stream_closed` frame, whose XADD wakes every tail blocked on it.
local function close_stream(ctx, idx, reason, now)
  if not is_set(idx) then return end
  local stream = stream_key(ctx.tag, ctx.eid, idx)
  local meta = stream .. ':meta'
  if redis.call('EXISTS', meta) == 1 and not is_set(redis.call('HGET', meta, 'closed_at')) then
    redis.call('HSET', meta, 'closed_at', fmt(now), 'closed_reason', reason)
    redis.call('XADD', stream, '*', 'frame_type', 'stream_closed', 'ts', fmt(now),
      'payload', reason, 'encoding', 'utf8', 'source', 'engine', 'mode', 'durable')
  end
end

local function end_attempt(ctx, state, now, extra)
  local idx = ctx.core.current_attempt_index
  if not is_set(idx) then return end
  local args = {'attempt_state', state, 'ended_at', fmt(now)}
  if extra then
    for i = 1, #extra do args[#args + 1] = extra[i] end
  end
  redis.call('HSET', attempt_key(ctx.tag, ctx.eid, idx), unpack(args))
end

local function publish_completion(ctx, outcome)
  local flow_id = ctx.core.flow_id
  if is_set(flow_id) then
    redis.call('PUBLISH', 'ff:dag:completions', cjson.encode({
      execution_id = ctx.eid, flow_id = flow_id, outcome = outcome,
    }))
  end
end

-- Move to terminal with `outcome`, clear lease fields, index as terminal, notify flows.
local function finish(ctx, outcome, now, extra)
  local had_attempt = is_set(ctx.core.current_attempt_index)
  -- A live lease means no grant can exist (grant_lease deleted it; none is issued for
  -- an active execution until its lease is lost).
  local may_hold_grant = not (ctx.core.lifecycle_phase == 'active'
    and ctx.core.ownership_state == 'leased')
  local fields = {
    'completed_at', fmt(now), 'current_lease_id', '', 'current_worker_id', '',
    'current_worker_instance_id', '', 'lease_expires_at', '', 'lease_renewal_deadline', '',
  }
  clear_set(ctx.core, fields, {'delay_until'})
  if extra then
    for i = 1, #extra do fields[#fields + 1] = extra[i] end
  end
  unindex_for_terminal(ctx)
  write_state(ctx, {
    lifecycle_phase = 'terminal', ownership_state = 'unowned',
    eligibility_state = 'not_applicable', blocking_reason = 'none', blocking_detail = '',
    terminal_outcome = outcome,
    attempt_state = had_attempt and 'attempt_terminal' or nil,
  }, now, fields)
  if may_hold_grant then redis.call('DEL', ctx.k('claim_grant')) end
  redis.call('ZADD', lane_key(ctx.tag, ctx.lane, 'terminal'), fmt(now), ctx.eid)
  redis.call('HINCRBY', lane_key(ctx.tag, ctx.lane, 'terminal_counts'), outcome, 1)
  publish_completion(ctx, outcome)
end

-- An execution leaves the terminal index (replay, purge): one fewer of its outcome.
local function leave_terminal(ctx)
  redis.call('ZREM', lane_key(ctx.tag, ctx.lane, 'terminal'), ctx.eid)
  redis.call('HINCRBY', lane_key(ctx.tag, ctx.lane, 'terminal_counts'),
    ctx.core.terminal_outcome or '', -1)
end

-- Waiting for a worker: the only state a claim grant is issued for.
local function is_claimable(core)
  return core.lifecycle_phase == facts.CLAIMABLE.phase
    and core.eligibility_state == facts.CLAIMABLE.eligibility
end

-- Active but without a live lease: the only state a reclaim is allowed in.
local function is_reclaimable(core)
  return core.lifecycle_phase == 'active'
    and facts.RECLAIMABLE_OWNERSHIPS[core.ownership_state or ''] == true
end

-- Policy JSON as stored at create ({} when none).
local function load_policy(ctx)
  return decode_json(redis.call('GET', ctx.k('policy'))) or {}
end

record.load_exec, record.new_exec, record.not_found, record.not_active =
  load_exec, new_exec, not_found, not_active
record.write_state, record.eligible_score, record.add_eligible, record.history =
  write_state, eligible_score, add_eligible, history
record.release_lease_indexes, record.close_stream, record.end_attempt, record.finish =
  release_lease_indexes, close_stream, end_attempt, finish
record.is_claimable, record.is_reclaimable, record.load_policy, record.lane_index_of =
  is_claimable, is_reclaimable, load_policy, lane_index_of
record.clear_set = clear_set
record.leave_terminal, record.HOLDER_FIELDS, record.CLAIM_FIELDS = leave_terminal,
  HOLDER_FIELDS, CLAIM_FIELDS
record.requeue = requeue
