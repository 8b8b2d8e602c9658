-- Leases: issuing one (shared by claim, resume and reclaim), renewing, expiring,
-- revoking, and reclaiming an execution whose lease was lost.

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

-- Writes a fresh lease for (worker_id, wiid) on attempt `idx` and indexes it.
-- Returns the reply tail shared by claim, claim_resumed and reclaim.
local function grant_lease(ctx, p, idx, attempt_id, attempt_type, now, extra)
  local core = ctx.core
  local epoch = fmt(to_int(core.current_lease_epoch, 0) + 1)
  local expires = now + p.ttl
  local renew_before = p.renew_before or math.floor(p.ttl * 2 / 3)
  local lane = ctx.lane
  redis.call('DEL', ctx.k('claim_grant'))
  redis.call('HSET', attempt_key(ctx.tag, ctx.eid, idx), 'lease_id', p.lease_id,
    'lease_epoch', epoch, 'worker_id', p.worker_id, 'worker_instance_id', p.wiid)
  redis.call('HSET', ctx.k('lease:current'), 'lease_id', p.lease_id, 'lease_epoch', epoch,
    'execution_id', ctx.eid, 'attempt_id', attempt_id, 'worker_id', p.worker_id,
    'worker_instance_id', p.wiid, 'acquired_at', fmt(now), 'expires_at', fmt(expires),
    'last_renewed_at', fmt(now), 'renewal_deadline', fmt(now + renew_before))
  local fields = {
    'current_attempt_index', idx, 'current_attempt_id', attempt_id,
    'current_lease_id', p.lease_id, 'current_lease_epoch', epoch,
    'current_worker_id', p.worker_id, 'current_worker_instance_id', p.wiid,
    'current_lane', lane, 'lease_acquired_at', fmt(now), 'lease_expires_at', fmt(expires),
    'lease_last_renewed_at', fmt(now), 'lease_renewal_deadline', fmt(now + renew_before),
    'lease_expired_at', '', 'lease_revoked_at', '', 'lease_revoke_reason', '',
    'delay_until', '',
  }
  if not is_set(core.started_at) then
    fields[#fields + 1] = 'started_at'
    fields[#fields + 1] = fmt(now)
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
  redis.call('ZREM', lane_key(ctx.tag, lane, 'eligible'), ctx.eid)
  redis.call('ZREM', lane_key(ctx.tag, lane, 'reclaimable'), ctx.eid)
  redis.call('ZADD', idx_key(ctx.tag, 'lease_expiry'), fmt(expires), ctx.eid)
  redis.call('ZADD', lane_key(ctx.tag, lane, 'active'), fmt(expires), ctx.eid)
  redis.call('SADD', worker_leases_key(ctx.tag, p.wiid), ctx.eid)
  local policy = load_policy(ctx)
  local timeout = to_int((policy.timeout_policy or {}).attempt_timeout_ms, 0)
  if timeout > 0 and attempt_type ~= 'resumed' then
    redis.call('ZADD', idx_key(ctx.tag, 'attempt_timeout'), fmt(now + timeout), ctx.eid)
  end
  history(ctx, attempt_type == 'reclaim' and 'reclaimed' or 'acquired', attempt_type,
    {'worker_id', p.worker_id, 'worker_instance_id', p.wiid})
  -- What the worker needs to run the attempt, so it does not read the record again.
  local reply = {1, 'OK', p.lease_id, epoch, fmt(expires), attempt_id, idx, attempt_type,
    core.execution_kind or '', core.namespace or '', core.payload_encoding or '',
    redis.call('GET', ctx.k('payload')) or '', core.lane_id or '',
    core.created_at or '', core.priority or '0'}
  local tags = redis.call('HGETALL', ctx.k('tags'))
  for i = 1, #tags do reply[#reply + 1] = tags[i] end
  return reply
end

-- Parses the lease-taking ARGV shared by claim, claim_resumed and reclaim:
-- eid, worker_id, worker_instance_id, lane, lease_id, lease_ttl_ms, attempt_id, [renew_before]
local function lease_params(args)
  local p = {
    worker_id = args[2], wiid = args[3], lane = args[4], lease_id = args[5],
    ttl = arg_int(args[6]), attempt_id = args[7], renew_before = arg_int(args[8]),
  }
  if not is_set(p.worker_id) or not is_set(p.wiid) or not is_set(p.lease_id)
      or not is_set(p.attempt_id) then
    return nil, err('invalid_input',
      'worker_id, worker_instance_id, lease_id and attempt_id are required')
  end
  if p.ttl == nil or p.ttl <= 0 then return nil, bad_number('lease_ttl_ms', args[6]) end
  return p
end

-- ff_renew_lease
--   KEYS[1] exec core
--   ARGV    eid, attempt_index, attempt_id, lease_id, lease_epoch, lease_ttl_ms,
--           lease_history_grace_ms
--   Returns ok(new_expires_at)
--   Errors  execution_not_found, invalid_input, fence_required, partial_fence_triple,
--           execution_not_active(+4 details), lease_revoked, lease_expired, stale_lease
redis.register_function('ff_renew_lease', function(keys, args)
  local ttl, grace = arg_int(args[6]), arg_int(args[7]) or 5000
  if ttl == nil or ttl <= 0 then return bad_number('lease_ttl_ms', args[6]) end
  local given = (is_set(args[3]) and 1 or 0) + (is_set(args[4]) and 1 or 0)
    + (is_set(args[5]) and 1 or 0)
  if given == 0 then return err('fence_required') end
  if given ~= 3 then return err('partial_fence_triple') end
  local ctx = load_exec(keys[1], args[1])
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
--   ARGV    eid
--   Returns ok('marked_expired') or ALREADY_SATISFIED(reason) with reason one of
--           execution_not_found, not_active, already_expired, already_revoked, unowned,
--           not_yet_expired (entries that no longer need watching leave lease_expiry)
redis.register_function('ff_mark_lease_expired_if_due', function(keys, args)
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
--   ARGV    eid, expected_lease_id ("" = any), revoke_reason
--   Returns ok('revoked', lease_id, lease_epoch) or ALREADY_SATISFIED(already_revoked |
--           already_expired)
--   Errors  execution_not_found, execution_not_active(+4), no_active_lease, stale_lease
redis.register_function('ff_revoke_lease', function(keys, args)
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  if core.lifecycle_phase ~= 'active' then return not_active(core) end
  if core.ownership_state == 'lease_revoked' then return already('already_revoked') end
  if core.ownership_state == 'lease_expired_reclaimable' then return already('already_expired') end
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

-- Past the reclaim cap an execution is failed for good (max_reclaims_exceeded): a
-- crash loop must end. Returns the cap when that happened, else nil.
local function fail_if_reclaim_cap_hit(ctx, default_cap, now)
  local core = ctx.core
  local policy = load_policy(ctx)
  local cap = to_int(policy.max_reclaim_count, nil)
    or to_int((policy.timeout_policy or {}).max_reclaim_count, nil)
    or default_cap or 100
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
  redis.call('HSET', attempt_key(ctx.tag, ctx.eid, idx), 'attempt_id', p.attempt_id,
    'execution_id', ctx.eid, 'attempt_index', idx, 'attempt_type', 'reclaim',
    'attempt_state', 'started', 'created_at', fmt(now), 'started_at', fmt(now),
    'reclaim_reason', reason, 'previous_attempt_index', old_idx or '')
  redis.call('ZADD', ctx.k('attempts'), fmt(now), idx)
  p.renew_before = nil
  return grant_lease(ctx, p, idx, p.attempt_id, 'reclaim', now, {
    'total_attempt_count', fmt(to_int(idx, 0) + 1),
    'lease_reclaim_count', fmt(to_int(core.lease_reclaim_count, 0) + 1),
  })
end

-- ff_reclaim_execution: a new attempt for an execution whose lease expired or was revoked.
--   KEYS[1] exec core
--   ARGV    eid, worker_id, worker_instance_id, lane, lease_id, lease_ttl_ms, attempt_id,
--           default_max_reclaim_count ("" = 100)
--   Returns as ff_claim_execution, attempt_type 'reclaim'
--   Errors  execution_not_found, invalid_input, execution_not_reclaimable,
--           invalid_claim_grant, max_retries_exhausted(cap) -- the execution is then
--           terminal failed (max_reclaims_exceeded): the cap ends it, on purpose.
redis.register_function('ff_reclaim_execution', function(keys, args)
  local p, bad = lease_params(args)
  if not p then return bad end
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  if not is_reclaimable(core) then
    return err('execution_not_reclaimable', core.lifecycle_phase or '', core.ownership_state or '')
  end
  local now = now_ms()
  local cap = fail_if_reclaim_cap_hit(ctx, arg_int(args[8]), now)
  if cap then return err('max_retries_exhausted', fmt(cap)) end
  local bad_grant = check_grant(ctx, p.worker_id, now, false)
  if bad_grant then return bad_grant end
  return reclaim_lease(ctx, p, now)
end)
