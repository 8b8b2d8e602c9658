-- Shared helpers of the flowfabric library: clock, envelopes, key names, state writes,
-- lease validation and index bookkeeping. Loaded first; every other file uses these.
--
-- Conventions
--   * Success replies are {1, status, ...}; business errors are {0, code, detail...}.
--   * Hash fields are strings; "unset" is "". Numbers are written with fmt() so that
--     13-digit timestamps and 16-digit eligible scores never turn into exponent notation.
--   * Every key a function touches shares the hash tag of KEYS[1]; names derived here
--     must match ff/core/keys.py exactly.
--   * Validate everything before the first write: a rejected call changes nothing.

local PRIORITY_MAX = 9000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%.0f', n)
end

local function ok(...)
  return {1, 'OK', ...}
end

local function already(...)
  return {1, 'ALREADY_SATISFIED', ...}
end

local function err(code, ...)
  return {0, code, ...}
end

local function is_set(v)
  return v ~= nil and v ~= false and v ~= ''
end

local function to_int(v, default)
  local n = tonumber(v)
  if n == nil then return default end
  return math.floor(n)
end

-- A numeric ARGV or nil; the caller returns invalid_input when nil and required.
local function arg_int(v)
  if not is_set(v) then return nil end
  local n = tonumber(v)
  if n == nil or n ~= n then return nil end
  return math.floor(n)
end

local function bad_number(name, v)
  return err('invalid_input', name .. ' must be a number, got: ' .. tostring(v))
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function tag_of(key)
  return string.match(key, '(%b{})')
end

local function decode_json(raw)
  if not is_set(raw) then return nil end
  local okd, value = pcall(cjson.decode, raw)
  if okd and type(value) == 'table' then return value end
  return nil
end

-- ---------------------------------------------------------------------------
-- Key names (mirrors ff/core/keys.py)

local function exec_key(tag, eid, suffix)
  return 'ff:exec:' .. tag .. ':' .. eid .. ':' .. suffix
end

local function attempt_key(tag, eid, idx)
  return 'ff:attempt:' .. tag .. ':' .. eid .. ':' .. idx
end

local function stream_key(tag, eid, idx)
  return 'ff:stream:' .. tag .. ':' .. eid .. ':' .. idx
end

local function idx_key(tag, name)
  return 'ff:idx:' .. tag .. ':' .. name
end

local function lane_key(tag, lane, name)
  return 'ff:idx:' .. tag .. ':lane:' .. lane .. ':' .. name
end

local function worker_leases_key(tag, wiid)
  return 'ff:idx:' .. tag .. ':worker:' .. wiid .. ':leases'
end

-- ---------------------------------------------------------------------------
-- Execution context: the core record plus the names derived from it.

local function load_exec(core_key, eid)
  local core = hgetall(core_key)
  if core.execution_id == nil then return nil end
  local tag = tag_of(core_key)
  return {
    eid = eid, tag = tag, key = core_key, core = core, lane = core.lane_id,
    k = function(suffix) return exec_key(tag, eid, suffix) end,
  }
end

local function not_found(eid)
  return err('execution_not_found', eid)
end

-- The four details a client needs to recognise its own earlier terminal call.
local function not_active(core)
  return err('execution_not_active', core.terminal_outcome or '', core.current_lease_epoch or '',
    core.lifecycle_phase or '', core.current_attempt_id or '')
end

-- ---------------------------------------------------------------------------
-- State vector writes: all seven dimensions plus public_state in one HSET.

local OUTCOME_PUBLIC = {
  success = 'completed', failed = 'failed', cancelled = 'cancelled',
  expired = 'expired', skipped = 'skipped',
}

-- Route, lane and operator blocks read "waiting"; budget and quota blocks "rate_limited"
-- (the same rule as ff/core/states.py public_state_of).
local ELIGIBILITY_PUBLIC = {
  not_eligible_until_time = 'delayed',
  blocked_by_dependencies = 'waiting_children',
  blocked_by_budget = 'rate_limited',
  blocked_by_quota = 'rate_limited',
}

local function public_state(phase, eligibility, outcome)
  if phase == 'terminal' then return OUTCOME_PUBLIC[outcome] or 'failed' end
  if phase == 'active' then return 'active' end
  if phase == 'suspended' then return 'suspended' end
  if phase == 'runnable' then return ELIGIBILITY_PUBLIC[eligibility] or 'waiting' end
  return 'waiting'
end

local DIMENSIONS = {
  'lifecycle_phase', 'ownership_state', 'eligibility_state', 'blocking_reason',
  'blocking_detail', 'terminal_outcome', 'attempt_state',
}

-- `state` maps dimension -> value (missing = keep); `extra` is a flat field/value list.
local function write_state(ctx, state, now, extra)
  local args = {}
  local merged = {}
  for _, dim in ipairs(DIMENSIONS) do
    local v = state[dim]
    if v == nil then v = ctx.core[dim] or '' end
    merged[dim] = v
    args[#args + 1] = dim
    args[#args + 1] = v
  end
  local pub = public_state(merged.lifecycle_phase, merged.eligibility_state, merged.terminal_outcome)
  args[#args + 1] = 'public_state'
  args[#args + 1] = pub
  args[#args + 1] = 'last_transition_at'
  args[#args + 1] = fmt(now)
  args[#args + 1] = 'last_mutation_at'
  args[#args + 1] = fmt(now)
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

-- ---------------------------------------------------------------------------
-- Index bookkeeping

-- Everything that tracks a held (or expired/revoked) lease.
local function release_lease_indexes(ctx)
  local core = ctx.core
  redis.call('ZREM', idx_key(ctx.tag, 'lease_expiry'), ctx.eid)
  redis.call('ZREM', idx_key(ctx.tag, 'attempt_timeout'), ctx.eid)
  redis.call('ZREM', lane_key(ctx.tag, ctx.lane, 'active'), ctx.eid)
  redis.call('ZREM', lane_key(ctx.tag, ctx.lane, 'reclaimable'), ctx.eid)
  if is_set(core.current_worker_instance_id) then
    redis.call('SREM', worker_leases_key(ctx.tag, core.current_worker_instance_id), ctx.eid)
  end
  redis.call('DEL', ctx.k('lease:current'))
end

local LANE_SETS = {
  'eligible', 'delayed', 'active', 'suspended', 'reclaimable', 'blocked:dependencies',
  'blocked:budget', 'blocked:quota', 'blocked:route', 'blocked:operator',
}

-- Removal from the indexes a terminal transition must leave. A lease holder ending its
-- own attempt (phase active, leased) can only be in the lease indexes; anything else
-- gets the defensive sweep of every scheduling and timeout index.
local function unindex_for_terminal(ctx)
  release_lease_indexes(ctx)
  redis.call('ZREM', idx_key(ctx.tag, 'execution_deadline'), ctx.eid)
  if ctx.core.lifecycle_phase == 'active' and ctx.core.ownership_state == 'leased' then
    return
  end
  for _, name in ipairs(LANE_SETS) do
    redis.call('ZREM', lane_key(ctx.tag, ctx.lane, name), ctx.eid)
  end
  redis.call('ZREM', idx_key(ctx.tag, 'suspension_timeout'), ctx.eid)
end

-- Close the attempt's output stream metadata, if the attempt ever opened one.
local function close_stream(ctx, idx, reason, now)
  if not is_set(idx) then return end
  local meta = stream_key(ctx.tag, ctx.eid, idx) .. ':meta'
  if redis.call('EXISTS', meta) == 1 and not is_set(redis.call('HGET', meta, 'closed_at')) then
    redis.call('HSET', meta, 'closed_at', fmt(now), 'closed_reason', reason)
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
  local fields = {
    'completed_at', fmt(now), 'current_lease_id', '', 'current_worker_id', '',
    'current_worker_instance_id', '', 'lease_expires_at', '', 'lease_renewal_deadline', '',
    'delay_until', '',
  }
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
  redis.call('DEL', ctx.k('claim_grant'))
  redis.call('ZADD', lane_key(ctx.tag, ctx.lane, 'terminal'), fmt(now), ctx.eid)
  publish_completion(ctx, outcome)
end

-- ---------------------------------------------------------------------------
-- Leases

local function mark_expired(ctx, now)
  local core = ctx.core
  write_state(ctx, {
    ownership_state = 'lease_expired_reclaimable', blocking_reason = 'waiting_for_worker',
    blocking_detail = 'lease expired', attempt_state = 'attempt_interrupted',
  }, now, {'lease_expired_at', fmt(now)})
  redis.call('ZREM', idx_key(ctx.tag, 'lease_expiry'), ctx.eid)
  redis.call('ZADD', lane_key(ctx.tag, ctx.lane, 'reclaimable'), eligible_score(core), ctx.eid)
  close_stream(ctx, core.current_attempt_index, 'lease_expired', now)
  history(ctx, 'expired', '', {'worker_id', core.current_worker_id or '',
    'worker_instance_id', core.current_worker_instance_id or ''})
end

-- Resolve the fence triple: a full triple, or an empty one with operator_override
-- (bound to the current lease). Returns lease_id, epoch, attempt_id or nil, error.
local function resolve_fence(core, lease_id, epoch, attempt_id, source)
  local given = (is_set(lease_id) and 1 or 0) + (is_set(epoch) and 1 or 0)
    + (is_set(attempt_id) and 1 or 0)
  if given == 3 then return lease_id, epoch, attempt_id end
  if given ~= 0 then return nil, err('partial_fence_triple') end
  if source ~= 'operator_override' then return nil, err('fence_required') end
  return core.current_lease_id or '', core.current_lease_epoch or '', core.current_attempt_id or ''
end

-- Full lease validation for a lease holder's write. Marks an expired lease on the way.
local function check_lease(ctx, lease_id, epoch, attempt_id, now)
  local core = ctx.core
  if core.lifecycle_phase ~= 'active' then return not_active(core) end
  if core.ownership_state == 'lease_revoked' or is_set(core.lease_revoked_at) then
    return err('lease_revoked')
  end
  if core.ownership_state == 'lease_expired_reclaimable' then return err('lease_expired') end
  if to_int(core.lease_expires_at, 0) <= now then
    mark_expired(ctx, now)
    return err('lease_expired')
  end
  if core.current_lease_id ~= lease_id or core.current_lease_epoch ~= epoch
      or core.current_attempt_id ~= attempt_id then
    return err('stale_lease')
  end
  return nil
end

-- Waiting for a worker: the only state a claim grant is issued for.
local function is_claimable(core)
  return core.lifecycle_phase == 'runnable' and core.eligibility_state == 'eligible_now'
end

-- Active but without a live lease: the only state a reclaim is allowed in.
local function is_reclaimable(core)
  return core.lifecycle_phase == 'active' and (core.ownership_state == 'lease_expired_reclaimable'
    or core.ownership_state == 'lease_revoked')
end

-- Policy JSON as stored at create ({} when none).
local function load_policy(ctx)
  return decode_json(redis.call('GET', ctx.k('policy'))) or {}
end

-- Capability CSV validation shared by create and grants: returns nil or a reason.
local function caps_problem(tokens)
  if #tokens > 256 then return 'too_many_tokens' end
  local bytes = 0
  for _, token in ipairs(tokens) do
    bytes = bytes + #token + 1
  end
  if bytes - 1 > 4096 then return 'too_many_bytes' end
  return nil
end

local function split_csv(csv)
  local out = {}
  if not is_set(csv) then return out end
  for token in string.gmatch(csv, '[^,]+') do out[#out + 1] = token end
  return out
end

-- Sorted CSV of required tokens the worker lacks ('' when satisfied).
local function missing_caps(required_csv, worker_csv)
  local have = {}
  for _, token in ipairs(split_csv(worker_csv)) do have[token] = true end
  local missing = {}
  for _, token in ipairs(split_csv(required_csv)) do
    if not have[token] then missing[#missing + 1] = token end
  end
  table.sort(missing)
  return table.concat(missing, ',')
end
