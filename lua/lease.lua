-- Leases: taking one (fresh claim, resumed claim, reclaim: one shared lease writer),
-- checking a holder's fence, renewing, expiring, revoking, and the reclaim cap.
-- @requires util, facts, record

local fmt, ok, already, err = util.fmt, util.ok, util.already, util.err
local is_set, to_int, arg_int, bad_number = util.is_set, util.to_int, util.arg_int, util.bad_number
local hgetall, tag_of = util.hgetall, util.tag_of
local attempt_key, idx_key, lane_key = util.attempt_key, util.idx_key, util.lane_key
local worker_leases_key, now_ms = util.worker_leases_key, util.now_ms
local required = util.required
local load_exec, not_found, not_active = record.load_exec, record.not_found, record.not_active
local write_state, eligible_score, history = record.write_state, record.eligible_score,
  record.history
local release_lease_indexes, close_stream = record.release_lease_indexes, record.close_stream
local end_attempt, finish, load_policy = record.end_attempt, record.finish, record.load_policy
local is_claimable, is_reclaimable = record.is_claimable, record.is_reclaimable
local HOLDER_FIELDS, CLAIM_FIELDS = record.HOLDER_FIELDS, record.CLAIM_FIELDS
local clear_set = record.clear_set

-- What an earlier lease or a pending attempt may have left on the core, cleared when a
-- new lease or attempt starts.
local LEASE_LEFTOVERS = {'lease_expired_at', 'lease_revoked_at', 'lease_revoke_reason',
  'delay_until'}
local PENDING_ATTEMPT_FIELDS = {'pending_retry_reason', 'pending_replay_reason',
  'pending_replay_requested_by', 'pending_previous_attempt_index', 'pending_replay_attempt',
  'resume_signal_ids'}

-- Checks a claim grant for `worker_id`; returns nil or an error reply.
local function check_grant(ctx, worker_id, now, check_expiry)
  local grant = hgetall(ctx.k('claim_grant'))
  if grant.worker_id == nil or grant.worker_id ~= worker_id then
    return err('invalid_claim_grant')
  end
  if check_expiry and to_int(grant.grant_expires_at, 0) < now then
    return err('claim_grant_expired')
  end
  return nil
end

-- The signals a resumed claim hands to the worker: a flat list of (signal_id, name,
-- source_type, source_identity, payload_encoding, payload) per signal.
local function resume_signals(ctx)
  local ids = util.decode_json(ctx.core.resume_signal_ids)
  local out = {}
  if not ids then return out end
  for _, sid in ipairs(ids) do
    local sk = 'ff:signal:' .. ctx.tag .. ':' .. sid
    local s = redis.call('HMGET', sk, 'signal_name', 'source_type', 'source_identity',
      'payload_encoding')
    out[#out + 1] = sid
    out[#out + 1] = s[1] or ''
    out[#out + 1] = s[2] or ''
    out[#out + 1] = s[3] or ''
    out[#out + 1] = s[4] or ''
    out[#out + 1] = redis.call('GET', sk .. ':payload') or ''
  end
  return out
end

-- Writes a fresh lease for (worker_id, wiid) on attempt `idx` and indexes it.
-- `attempt_fields` (a flat list or nil) are written to the attempt hash with the lease's
-- own. `p.no_grant` says the caller knows no claim grant exists (claim_next's scan).
-- Returns the lease reply shared by every claim path:
--   execution_id, lease_id, lease_epoch, expires_at, attempt_id, attempt_index,
--   attempt_type, execution_kind, namespace, payload_encoding, payload, lane_id,
--   created_at, priority, {tag_k1, tag_v1, ...}, {resume signals, 6 fields each}
local function grant_lease(ctx, p, idx, attempt_id, attempt_type, now, extra, attempt_fields)
  local core = ctx.core
  local epoch = fmt(to_int(core.current_lease_epoch, 0) + 1)
  local expires = now + p.ttl
  local renew_before = p.renew_before or math.floor(p.ttl * 2 / 3)
  local lane = ctx.lane
  local now_s, expires_s, deadline_s = fmt(now), fmt(expires), fmt(now + renew_before)
  if not p.no_grant then redis.call('DEL', ctx.k('claim_grant')) end
  local attempt = attempt_fields or {}
  for _, v in ipairs({'lease_id', p.lease_id, 'lease_epoch', epoch, 'worker_id', p.worker_id,
      'worker_instance_id', p.wiid}) do
    attempt[#attempt + 1] = v
  end
  redis.call('HSET', attempt_key(ctx.tag, ctx.eid, idx), unpack(attempt))
  redis.call('HSET', ctx.k('lease:current'), 'lease_id', p.lease_id, 'lease_epoch', epoch,
    'execution_id', ctx.eid, 'attempt_id', attempt_id, 'worker_id', p.worker_id,
    'worker_instance_id', p.wiid, 'acquired_at', now_s, 'expires_at', expires_s,
    'last_renewed_at', now_s, 'renewal_deadline', deadline_s)
  local fields = {
    'current_attempt_index', idx, 'current_attempt_id', attempt_id,
    'current_lease_id', p.lease_id, 'current_lease_epoch', epoch,
    'current_worker_id', p.worker_id, 'current_worker_instance_id', p.wiid,
    'current_lane', lane, 'lease_acquired_at', now_s, 'lease_expires_at', expires_s,
    'lease_last_renewed_at', now_s, 'lease_renewal_deadline', deadline_s,
  }
  clear_set(core, fields, LEASE_LEFTOVERS)
  if not is_set(core.started_at) then
    fields[#fields + 1] = 'started_at'
    fields[#fields + 1] = now_s
  end
  if extra then
    for i = 1, #extra do fields[#fields + 1] = extra[i] end
  end
  write_state(ctx, {
    lifecycle_phase = 'active', ownership_state = 'leased', eligibility_state = 'not_applicable',
    blocking_reason = 'none', blocking_detail = '', terminal_outcome = 'none',
    attempt_state = 'running_attempt',
  }, now, fields)
  ctx.core.current_lease_id = p.lease_id
  ctx.core.current_lease_epoch = epoch
  ctx.core.current_attempt_index = idx
  -- A reclaim takes an execution from reclaimable, every other claim from eligible.
  redis.call('ZREM', lane_key(ctx.tag, lane, attempt_type == 'reclaim' and 'reclaimable'
    or 'eligible'), ctx.eid)
  redis.call('ZADD', idx_key(ctx.tag, 'lease_expiry'), expires_s, ctx.eid)
  redis.call('ZADD', lane_key(ctx.tag, lane, 'active'), expires_s, ctx.eid)
  redis.call('SADD', worker_leases_key(ctx.tag, p.wiid), ctx.eid)
  local policy = load_policy(ctx)
  local timeout = to_int((policy.timeout_policy or {}).attempt_timeout_ms, 0)
  if timeout > 0 and attempt_type ~= 'resumed' then
    redis.call('ZADD', idx_key(ctx.tag, 'attempt_timeout'), fmt(now + timeout), ctx.eid)
  end
  -- The lease history records what ended or moved a lease (reclaim, expiry, revoke,
  -- failure); a plain acquisition is on the attempt hash already.
  if attempt_type == 'reclaim' then
    history(ctx, 'reclaimed', attempt_type,
      {'worker_id', p.worker_id, 'worker_instance_id', p.wiid})
  end
  -- What the worker needs to run the attempt, so it does not read the record again.
  return ok(ctx.eid, p.lease_id, epoch, fmt(expires), attempt_id, idx, attempt_type,
    core.execution_kind or '', core.namespace or '', core.payload_encoding or '',
    redis.call('GET', ctx.k('payload')) or '', core.lane_id or '',
    core.created_at or '', core.priority or '0', redis.call('HGETALL', ctx.k('tags')),
    (attempt_type == 'resumed' or attempt_type == 'reclaim') and resume_signals(ctx) or {})
end

-- The lease-taking arguments shared by claim, claim_resumed, reclaim and claim_next.
local function lease_params(worker_id, wiid, lease_id, ttl_arg, attempt_id)
  local p = {worker_id = worker_id, wiid = wiid, lease_id = lease_id,
    ttl = arg_int(ttl_arg), attempt_id = attempt_id}
  if not is_set(p.worker_id) or not is_set(p.wiid) or not is_set(p.lease_id)
      or not is_set(p.attempt_id) then
    return nil, err('invalid_input',
      'worker_id, worker_instance_id, lease_id and attempt_id are required')
  end
  if p.ttl == nil or p.ttl <= 0 then return nil, bad_number('lease_ttl_ms', ttl_arg) end
  return p
end

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

-- Fence + lease validation shared by the lease holder's terminal calls, whose ARGV
-- start eid, lease_id, lease_epoch, attempt_id. Returns nil or an error reply.
local function holder_check(ctx, lease_id, epoch, attempt_id, source, now)
  local fence_lease, fence_epoch, fence_attempt = resolve_fence(ctx.core, lease_id, epoch,
    attempt_id, source)
  if fence_lease == nil then return fence_epoch end
  return check_lease(ctx, fence_lease, fence_epoch, fence_attempt, now)
end

-- Whether this call repeats one by the same holder that already ended the execution
-- with `outcome` (same epoch and attempt id).
local function already_ended_by_caller(core, epoch, attempt_id, outcome)
  return core.lifecycle_phase == 'terminal' and core.terminal_outcome == outcome
    and is_set(epoch) and core.current_lease_epoch == epoch
    and core.current_attempt_id == attempt_id
end

-- How many reclaims the execution's policy allows (the top-level field wins).
local function reclaim_cap(ctx)
  local policy = load_policy(ctx)
  return to_int(policy.max_reclaim_count, nil)
    or to_int((policy.timeout_policy or {}).max_reclaim_count, nil)
    or facts.RECLAIM_CAP_DEFAULT
end

-- Past the reclaim cap an execution is failed for good (max_reclaims_exceeded): a
-- crash loop must end. Returns the cap when that happened, else nil.
local function fail_if_reclaim_cap_hit(ctx, now)
  local core = ctx.core
  local cap = reclaim_cap(ctx)
  if to_int(core.lease_reclaim_count, 0) < cap then return nil end
  end_attempt(ctx, 'ended_failure', now, {'failure_reason', 'max_reclaims_exceeded'})
  close_stream(ctx, core.current_attempt_index, 'reclaimed', now)
  finish(ctx, 'failed', now, {'failure_reason', 'max_reclaims_exceeded'})
  history(ctx, 'released', 'failed_terminal')
  return cap
end

-- A new attempt, of type reclaim, for a reclaimable execution (checks already done).
local function reclaim_lease(ctx, p, now)
  local core = ctx.core
  local old_idx = core.current_attempt_index
  local reason = 'lease_' .. (core.ownership_state or '')
  end_attempt(ctx, 'interrupted_reclaimed', now, {'failure_reason', reason})
  close_stream(ctx, old_idx, 'reclaimed', now)
  if is_set(core.current_worker_instance_id) then
    redis.call('SREM', worker_leases_key(ctx.tag, core.current_worker_instance_id), ctx.eid)
  end
  local idx = fmt(to_int(core.total_attempt_count, 0))
  local now_s = fmt(now)
  redis.call('ZADD', ctx.k('attempts'), now_s, idx)
  return grant_lease(ctx, p, idx, p.attempt_id, 'reclaim', now, {
    'total_attempt_count', fmt(to_int(idx, 0) + 1),
    'lease_reclaim_count', fmt(to_int(core.lease_reclaim_count, 0) + 1),
  }, {'attempt_id', p.attempt_id, 'execution_id', ctx.eid, 'attempt_index', idx,
    'attempt_type', 'reclaim', 'attempt_state', 'started', 'created_at', now_s,
    'started_at', now_s, 'reclaim_reason', reason, 'previous_attempt_index', old_idx or ''})
end

-- Why a fresh claim is not possible now (an error reply), or nil.
local function fresh_claim_problem(core)
  if not is_claimable(core) or core.terminal_outcome ~= 'none' then
    return err('execution_not_leaseable', core.lifecycle_phase or '', core.eligibility_state or '')
  end
  if core.ownership_state ~= 'unowned' then return err('lease_conflict') end
  if core.attempt_state == 'running_attempt' then return err('active_attempt_exists') end
  if core.attempt_state == 'attempt_interrupted' then return err('use_claim_resumed_execution') end
  return nil
end

-- Starts a fresh attempt (initial, retry or replay, from the pending state) under a lease.
local function fresh_claim(ctx, p, now)
  local core = ctx.core
  local idx = fmt(to_int(core.total_attempt_count, 0))
  local attempt_type, lineage = 'initial', {}
  if core.attempt_state == 'pending_retry_attempt' then
    attempt_type = 'retry'
    lineage = {'retry_reason', core.pending_retry_reason or '',
      'previous_attempt_index', core.pending_previous_attempt_index or ''}
  elseif core.attempt_state == 'pending_replay_attempt' then
    attempt_type = 'replay'
    lineage = {'replay_reason', core.pending_replay_reason or '',
      'replay_requested_by', core.pending_replay_requested_by or '',
      'replayed_from_attempt_index', core.pending_previous_attempt_index or ''}
  end
  local now_s = fmt(now)
  local attempt = {'attempt_id', p.attempt_id, 'execution_id', ctx.eid, 'attempt_index', idx,
    'attempt_type', attempt_type, 'attempt_state', 'started', 'created_at', now_s,
    'started_at', now_s}
  for i = 1, #lineage do attempt[#attempt + 1] = lineage[i] end
  redis.call('ZADD', ctx.k('attempts'), now_s, idx)
  local fields = {'total_attempt_count', fmt(to_int(idx, 0) + 1)}
  clear_set(core, fields, PENDING_ATTEMPT_FIELDS)
  return grant_lease(ctx, p, idx, p.attempt_id, attempt_type, now, fields, attempt)
end

-- Why a resume claim is not possible now (an error reply), or nil.
local function resume_claim_problem(core)
  if not is_claimable(core) then
    return err('execution_not_leaseable', core.lifecycle_phase or '', core.eligibility_state or '')
  end
  if core.ownership_state ~= 'unowned' then return err('lease_conflict') end
  if core.attempt_state ~= 'attempt_interrupted' then return err('not_a_resumed_execution') end
  return nil
end

-- A new lease on the same, interrupted attempt.
local function resume_claim(ctx, p, now)
  local idx = ctx.core.current_attempt_index
  return grant_lease(ctx, p, idx, ctx.core.current_attempt_id, 'resumed', now, nil,
    {'attempt_state', 'started', 'resumed_at', fmt(now)})
end

-- The grant-consuming claims (ARGV as ff_claim_execution): `problem_of(core)` says why
-- this kind of claim does not apply, `take(ctx, p, now)` writes the lease.
local function claim_with_grant(keys, args, problem_of, take)
  local p, bad = lease_params(args[2], args[3], args[4], args[5], args[6])
  if not p then return bad end
  p.renew_before = arg_int(args[7])
  local ctx = load_exec(keys[1], args[1], CLAIM_FIELDS)
  if not ctx then return not_found(args[1]) end
  local problem = problem_of(ctx.core)
  if problem then return problem end
  local now = now_ms()
  local bad_grant = check_grant(ctx, p.worker_id, now, true)
  if bad_grant then return bad_grant end
  return take(ctx, p, now)
end

-- ff_claim_execution: consume a claim grant and start a fresh attempt.
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] worker_id
--   ARGV[3] worker_instance_id
--   ARGV[4] lease_id
--   ARGV[5] lease_ttl_ms
--   ARGV[6] attempt_id
--   ARGV[7] renew_before_ms ("" = ttl*2/3)
--   Reply   OK(<the lease reply of grant_lease>); attempt_type initial | retry | replay
--   Errors  execution_not_found, invalid_input, execution_not_leaseable, lease_conflict,
--           active_attempt_exists, use_claim_resumed_execution, invalid_claim_grant,
--           claim_grant_expired
redis.register_function('ff_claim_execution', function(keys, args)
  return claim_with_grant(keys, args, fresh_claim_problem, fresh_claim)
end)

-- ff_claim_resumed_execution: a new lease on the same, interrupted attempt (after a
-- worker delay or a resumed suspension).
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] worker_id
--   ARGV[3] worker_instance_id
--   ARGV[4] lease_id
--   ARGV[5] lease_ttl_ms
--   ARGV[6] attempt_id (unused: the interrupted attempt keeps its id)
--   ARGV[7] renew_before_ms ("" = ttl*2/3)
--   Reply   OK(<the lease reply of grant_lease>) with attempt_type 'resumed'
--   Errors  execution_not_found, invalid_input, execution_not_leaseable, lease_conflict,
--           not_a_resumed_execution, invalid_claim_grant, claim_grant_expired
redis.register_function('ff_claim_resumed_execution', function(keys, args)
  return claim_with_grant(keys, args, resume_claim_problem, resume_claim)
end)

-- ff_renew_lease
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] attempt_index
--   ARGV[3] attempt_id
--   ARGV[4] lease_id
--   ARGV[5] lease_epoch
--   ARGV[6] lease_ttl_ms
--   ARGV[7] lease_history_grace_ms ("" = 5000)
--   Reply   OK(expires_at)
--   Errors  execution_not_found, invalid_input, fence_required, partial_fence_triple,
--           execution_not_active(+4 details), lease_revoked, lease_expired, stale_lease
redis.register_function('ff_renew_lease', function(keys, args)
  local ttl, grace = arg_int(args[6]), arg_int(args[7]) or 5000
  if ttl == nil or ttl <= 0 then return bad_number('lease_ttl_ms', args[6]) end
  local given = (is_set(args[3]) and 1 or 0) + (is_set(args[4]) and 1 or 0)
    + (is_set(args[5]) and 1 or 0)
  if given == 0 then return err('fence_required') end
  if given ~= 3 then return err('partial_fence_triple') end
  local ctx = load_exec(keys[1], args[1], HOLDER_FIELDS)
  if not ctx then return not_found(args[1]) end
  local now = now_ms()
  local bad = check_lease(ctx, args[4], args[5], args[3], now)
  if bad then return bad end
  if ctx.core.current_attempt_index ~= args[2] then return err('stale_lease') end
  local expires = now + ttl
  local deadline = fmt(now + math.floor(ttl * 2 / 3))
  redis.call('HSET', ctx.key, 'lease_expires_at', fmt(expires), 'lease_last_renewed_at',
    fmt(now), 'lease_renewal_deadline', deadline)
  redis.call('HSET', ctx.k('lease:current'), 'expires_at', fmt(expires), 'last_renewed_at',
    fmt(now), 'renewal_deadline', deadline)
  redis.call('PEXPIREAT', ctx.k('lease:current'), fmt(expires + grace))
  redis.call('ZADD', idx_key(ctx.tag, 'lease_expiry'), fmt(expires), ctx.eid)
  return ok(fmt(expires))
end)

-- ff_mark_lease_expired_if_due (lease_expiry scanner; idempotent)
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   Reply   OK('marked_expired') or ALREADY_SATISFIED(reason), reason one of
--           execution_not_found, not_active, already_expired, already_revoked, unowned,
--           not_yet_expired (entries that no longer need watching leave lease_expiry)
--   Errors  invalid_input
redis.register_function('ff_mark_lease_expired_if_due', function(keys, args)
  local bad = required(args, 'execution_id')
  if bad then return bad end
  local tag = tag_of(keys[1])
  local ctx = load_exec(keys[1], args[1])
  if not ctx then
    redis.call('ZREM', idx_key(tag, 'lease_expiry'), args[1])
    return already('execution_not_found')
  end
  local core = ctx.core
  if core.lifecycle_phase ~= 'active' then
    redis.call('ZREM', idx_key(tag, 'lease_expiry'), args[1])
    return already('not_active')
  end
  if core.ownership_state == 'lease_expired_reclaimable' then return already('already_expired') end
  if core.ownership_state == 'lease_revoked' then return already('already_revoked') end
  if core.ownership_state ~= 'leased' then
    redis.call('ZREM', idx_key(tag, 'lease_expiry'), args[1])
    return already('unowned')
  end
  local now = now_ms()
  if to_int(core.lease_expires_at, 0) > now then return already('not_yet_expired') end
  mark_expired(ctx, now)
  return ok('marked_expired')
end)

-- ff_revoke_lease (operator)
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] expected_lease_id ("" = any)
--   ARGV[3] revoke_reason
--   Reply   OK('revoked', lease_id, lease_epoch) or ALREADY_SATISFIED(already_revoked |
--           already_expired, '', '')
--   Errors  execution_not_found, execution_not_active(+4), no_active_lease, stale_lease
redis.register_function('ff_revoke_lease', function(keys, args)
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  if core.lifecycle_phase ~= 'active' then return not_active(core) end
  if core.ownership_state == 'lease_revoked' then return already('already_revoked', '', '') end
  if core.ownership_state == 'lease_expired_reclaimable' then
    return already('already_expired', '', '')
  end
  if core.ownership_state ~= 'leased' then return err('no_active_lease') end
  if is_set(args[2]) and args[2] ~= core.current_lease_id then
    return err('stale_lease', 'expected ' .. args[2] .. ' but current is '
      .. (core.current_lease_id or ''))
  end
  local now = now_ms()
  local reason = is_set(args[3]) and args[3] or 'operator'
  local lease_id, epoch = core.current_lease_id, core.current_lease_epoch
  release_lease_indexes(ctx)
  write_state(ctx, {
    ownership_state = 'lease_revoked', blocking_reason = 'waiting_for_worker',
    blocking_detail = 'lease revoked: ' .. reason, attempt_state = 'attempt_interrupted',
  }, now, {'lease_revoked_at', fmt(now), 'lease_revoke_reason', reason})
  redis.call('ZADD', lane_key(ctx.tag, ctx.lane, 'reclaimable'), eligible_score(core), ctx.eid)
  history(ctx, 'revoked', reason)
  return ok('revoked', lease_id, epoch)
end)

-- ff_reclaim_execution: a new attempt for an execution whose lease expired or was revoked.
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] worker_id
--   ARGV[3] worker_instance_id
--   ARGV[4] lease_id
--   ARGV[5] lease_ttl_ms
--   ARGV[6] attempt_id
--   ARGV[7] renew_before_ms ("" = ttl*2/3)
--   Reply   OK(<the lease reply of grant_lease>), attempt_type 'reclaim'
--   Errors  execution_not_found, invalid_input, execution_not_reclaimable,
--           invalid_claim_grant, max_retries_exhausted(cap) -- the execution is then
--           terminal failed (max_reclaims_exceeded): the cap ends it, on purpose.
redis.register_function('ff_reclaim_execution', function(keys, args)
  local p, bad = lease_params(args[2], args[3], args[4], args[5], args[6])
  if not p then return bad end
  p.renew_before = arg_int(args[7])
  local ctx = load_exec(keys[1], args[1], CLAIM_FIELDS)
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  if not is_reclaimable(core) then
    return err('execution_not_reclaimable', core.lifecycle_phase or '', core.ownership_state or '')
  end
  local now = now_ms()
  local cap = fail_if_reclaim_cap_hit(ctx, now)
  if cap then return err('max_retries_exhausted', fmt(cap)) end
  local bad_grant = check_grant(ctx, p.worker_id, now, false)
  if bad_grant then return bad_grant end
  return reclaim_lease(ctx, p, now)
end)

lease.lease_params, lease.holder_check, lease.reclaim_cap = lease_params, holder_check,
  reclaim_cap
lease.already_ended_by_caller, lease.fail_if_reclaim_cap_hit =
  already_ended_by_caller, fail_if_reclaim_cap_hit
lease.reclaim_lease, lease.fresh_claim, lease.resume_claim = reclaim_lease, fresh_claim,
  resume_claim
