-- Scheduling: claim and reclaim grants, claim_next, priority, delayed promotion,
-- admission blocks, progress, and the worker registry.
-- @requires util, facts, record, lease

local fmt, ok, already, err = util.fmt, util.ok, util.already, util.err
local is_set, arg_int, bad_number, to_int = util.is_set, util.arg_int, util.bad_number, util.to_int
local tag_of, now_ms = util.tag_of, util.now_ms
local split_csv, caps_problem, missing_caps = util.split_csv, util.caps_problem, util.missing_caps
local exec_key, lane_key = util.exec_key, util.lane_key
local required = util.required
local load_exec, not_found, not_active = record.load_exec, record.not_found, record.not_active
local write_state, add_eligible = record.write_state, record.add_eligible
local is_claimable, is_reclaimable = record.is_claimable, record.is_reclaimable
local lease_params, reclaim_cap = lease.lease_params, lease.reclaim_cap
local fail_if_reclaim_cap_hit, reclaim_lease = lease.fail_if_reclaim_cap_hit, lease.reclaim_lease
local fresh_claim, resume_claim = lease.fresh_claim, lease.resume_claim
local CLAIM_FIELDS = record.CLAIM_FIELDS

-- The grant arguments shared by claim grants, reclaim grants and grant_for_next, in
-- this order: worker_id, worker_instance_id, lane_id, capability_hash, grant_ttl_ms,
-- route_snapshot_json, admission_summary, worker_capabilities_csv.
local function grant_params(args, first)
  local a = function(i) return args[first + i - 1] end
  local ttl = arg_int(a(5))
  if not is_set(a(1)) or not is_set(a(2)) then
    return nil, err('invalid_input', 'worker_id and worker_instance_id are required')
  end
  if ttl == nil or ttl < facts.GRANT_TTL_MIN_MS or ttl > facts.GRANT_TTL_MAX_MS then
    return nil, err('invalid_input', 'grant_ttl_ms must be in ' .. facts.GRANT_TTL_MIN_MS
      .. '..' .. facts.GRANT_TTL_MAX_MS .. ', got: ' .. tostring(a(5)))
  end
  local problem = caps_problem(split_csv(a(8)))
  if problem then return nil, err('invalid_capabilities', 'worker:' .. problem) end
  return {worker_id = a(1), wiid = a(2), lane = a(3) or '', cap_hash = a(4) or '',
    ttl = ttl, route = a(6) or '', admission = a(7) or '', caps = a(8) or ''}
end

local function write_grant(ctx, g, now)
  local expires = now + g.ttl
  local key = ctx.k('claim_grant')
  redis.call('HSET', key, 'worker_id', g.worker_id, 'worker_instance_id', g.wiid,
    'lane_id', g.lane, 'capability_hash', g.cap_hash, 'route_snapshot_json', g.route,
    'admission_summary', g.admission, 'created_at', fmt(now), 'grant_expires_at', fmt(expires))
  redis.call('PEXPIREAT', key, fmt(expires))
  return expires
end

-- Moves an eligible execution to the blocked index of `reason` (a key of facts.BLOCKS).
local function block(ctx, reason, detail, now)
  local target = facts.BLOCKS[reason]
  redis.call('ZREM', lane_key(ctx.tag, ctx.lane, 'eligible'), ctx.eid)
  redis.call('ZADD', lane_key(ctx.tag, ctx.lane, target.index), fmt(now), ctx.eid)
  write_state(ctx, {eligibility_state = target.eligibility, blocking_reason = reason,
    blocking_detail = detail}, now, nil)
end

-- A worker lacking required capabilities met this execution: remember when, and park
-- it in blocked:route so it stops occupying the head of the queue.
local function park_for_capabilities(ctx, now)
  redis.call('HSET', ctx.key, 'last_capability_mismatch_at', fmt(now))
  block(ctx, 'waiting_for_capable_worker',
    'no connected worker satisfies required_capabilities', now)
end

-- ff_issue_claim_grant
--   KEYS[1]  exec core
--   ARGV[1]  execution_id
--   ARGV[2]  worker_id
--   ARGV[3]  worker_instance_id
--   ARGV[4]  lane_id
--   ARGV[5]  capability_hash
--   ARGV[6]  grant_ttl_ms
--   ARGV[7]  route_snapshot_json
--   ARGV[8]  admission_summary
--   ARGV[9]  worker_capabilities_csv (sorted)
--   ARGV[10] block_on_mismatch ("1": park a mismatched execution in blocked:route)
--   Reply    OK(execution_id, grant_expires_at)
--   Errors  execution_not_found, invalid_input, invalid_capabilities,
--           execution_not_eligible, grant_already_exists, execution_not_in_eligible_set,
--           capability_mismatch(missing_csv, 'blocked' | '')
redis.register_function('ff_issue_claim_grant', function(keys, args)
  local g, bad = grant_params(args, 2)
  if not g then return bad end
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  if not is_claimable(core) then
    return err('execution_not_eligible', core.lifecycle_phase or '', core.eligibility_state or '')
  end
  if redis.call('EXISTS', ctx.k('claim_grant')) == 1 then return err('grant_already_exists') end
  if not redis.call('ZSCORE', lane_key(ctx.tag, ctx.lane, 'eligible'), ctx.eid) then
    return err('execution_not_in_eligible_set')
  end
  local now = now_ms()
  local missing = missing_caps(core.required_capabilities, g.caps)
  if missing ~= '' then
    if args[10] == '1' then
      park_for_capabilities(ctx, now)
      return err('capability_mismatch', missing, 'blocked')
    end
    redis.call('HSET', ctx.key, 'last_capability_mismatch_at', fmt(now))
    return err('capability_mismatch', missing, '')
  end
  return ok(ctx.eid, fmt(write_grant(ctx, g, now)))
end)

local HEAD_PAGE = 4  -- entries read first; the head is nearly always takeable

-- first_takeable over the ids of one page; `seen` collects them (nil: do not collect).
-- An entry with a live grant (held for admission, or for a claim in flight) is skipped
-- before its record is loaded: with many workers the head holds several of them.
local function takeable_in(ids, set_key, mode, caps, now, seen)
  local tag = tag_of(set_key)
  local takeable = mode == 'claim' and is_claimable or is_reclaimable
  local blocked = 0
  for _, eid in ipairs(ids) do
    if seen then seen[eid] = true end
    if redis.call('EXISTS', exec_key(tag, eid, 'claim_grant')) == 0 then
      local ctx = load_exec(exec_key(tag, eid, 'core'), eid, CLAIM_FIELDS)
      if not ctx or not takeable(ctx.core) then
        redis.call('ZREM', set_key, eid)
      elseif missing_caps(ctx.core.required_capabilities, caps) == '' then
        return ctx, blocked
      elseif mode == 'claim' then
        park_for_capabilities(ctx, now)
        blocked = blocked + 1
      end
    end
  end
  return nil, blocked
end

-- The first execution at the head (`limit` entries) of `set_key` this worker may take:
-- claimable (mode claim) or reclaimable (mode reclaim), not granted to anyone, and with
-- every required capability in `caps`. On the way, entries whose execution moved on are
-- dropped and capability mismatches parked in blocked:route (claim mode). The first
-- HEAD_PAGE entries are read first, the rest of the `limit` only when none of them fits.
-- Returns ctx or nil, and how many were parked.
local function first_takeable(set_key, mode, caps, limit, now)
  local head = redis.call('ZRANGE', set_key, 0, math.min(limit, HEAD_PAGE) - 1)
  if #head < HEAD_PAGE or limit <= HEAD_PAGE then
    return takeable_in(head, set_key, mode, caps, now, nil)
  end
  local seen = {}
  local ctx, blocked = takeable_in(head, set_key, mode, caps, now, seen)
  if ctx then return ctx, blocked end
  local rest = {}
  for _, eid in ipairs(redis.call('ZRANGE', set_key, 0, limit - 1)) do
    if not seen[eid] then rest[#rest + 1] = eid end
  end
  local more
  ctx, more = takeable_in(rest, set_key, mode, caps, now, nil)
  return ctx, blocked + more
end

local function scan_limit(v)
  local limit = arg_int(v) or 16
  if limit < 1 or limit > 100 then return nil end
  return limit
end

-- ff_issue_grant_for_next: the scheduler's grant step on one partition and lane. Offers
-- reclaimable executions (lost leases) first, then eligible ones, granting the first
-- this worker may take among the head of each set, so concurrent workers do not all
-- collide on one head entry.
--   KEYS[1] ff:idx:{fp:N}:lane:<lane>:reclaimable
--   KEYS[2] ff:idx:{fp:N}:lane:<lane>:eligible
--   ARGV[1] worker_id
--   ARGV[2] worker_instance_id
--   ARGV[3] lane_id
--   ARGV[4] capability_hash
--   ARGV[5] grant_ttl_ms
--   ARGV[6] route_snapshot_json
--   ARGV[7] admission_summary
--   ARGV[8] worker_capabilities_csv
--   ARGV[9] scan_limit (1..100)
--   Reply   OK(execution_id, grant_expires_at, kind (claim | reclaim), budget_ids,
--           quota_policy_id, blocked_count) or EMPTY(blocked_count)
--   Errors  invalid_input, invalid_capabilities
redis.register_function('ff_issue_grant_for_next', function(keys, args)
  local g, bad = grant_params(args, 1)
  if not g then return bad end
  local limit = scan_limit(args[9])
  if not limit then return err('invalid_input', 'scan_limit must be 1..100') end
  local now = now_ms()
  local total_blocked = 0
  for i, mode in ipairs({'reclaim', 'claim'}) do
    local ctx, blocked = first_takeable(keys[i], mode, g.caps, limit, now)
    total_blocked = total_blocked + blocked
    if ctx then
      return ok(ctx.eid, fmt(write_grant(ctx, g, now)), mode, ctx.core.budget_ids or '',
        ctx.core.quota_policy_id or '', fmt(total_blocked))
    end
  end
  return {1, 'EMPTY', fmt(total_blocked)}
end)

-- An execution with budgets or a quota is admitted outside this partition first.
local function needs_admission(core)
  return is_set(core.budget_ids) or is_set(core.quota_policy_id)
end

local function admission_grant(ctx, g, mode, now)
  return {1, 'ADMIT', ctx.eid, fmt(write_grant(ctx, g, now)), mode, ctx.core.budget_ids or '',
    ctx.core.quota_policy_id or ''}
end

-- One lease of ff_claim_next: the first reclaimable execution (failing those past their
-- reclaim cap on the way), else the first eligible one, resumed or started fresh. An
-- execution that needs admission is not leased: with grant parameters `g` the reply is
-- the ADMIT grant for it, without (a batch) the scan stops there. Returns the reply or
-- nil, how many were parked in blocked:route, and whether it stopped for admission.
local function claim_one(keys, p, g, caps, limit, now)
  p.no_grant = true  -- first_takeable only returns executions without a grant
  local function take(ctx, mode, lease)
    if not needs_admission(ctx.core) then return lease(ctx, p, now), false end
    if g then return admission_grant(ctx, g, mode, now), false end
    return nil, true
  end
  for _ = 1, limit do
    local ctx = first_takeable(keys[1], 'reclaim', caps, limit, now)
    if not ctx then break end
    if not fail_if_reclaim_cap_hit(ctx, now) then
      local reply, admit = take(ctx, 'reclaim', reclaim_lease)
      return reply, 0, admit
    end
  end
  local ctx, blocked = first_takeable(keys[2], 'claim', caps, limit, now)
  if not ctx then return nil, blocked, false end
  local lease = ctx.core.attempt_state == 'attempt_interrupted' and resume_claim or fresh_claim
  local reply, admit = take(ctx, 'claim', lease)
  return reply, blocked, admit
end

-- ff_claim_next: grant and lease in one step, for a worker that runs the scheduler
-- itself. Takes the first reclaimable, else eligible, execution this worker may run
-- (same choice as ff_issue_grant_for_next) and claims it at once: a reclaim, a resume of
-- an interrupted attempt, or a fresh attempt. No grant key is written.
--   KEYS[1] ff:idx:{fp:N}:lane:<lane>:reclaimable
--   KEYS[2] ff:idx:{fp:N}:lane:<lane>:eligible
--   ARGV[1] worker_id
--   ARGV[2] worker_instance_id
--   ARGV[3] worker_capabilities_csv
--   ARGV[4] lease_id
--   ARGV[5] lease_ttl_ms
--   ARGV[6] attempt_id
--   ARGV[7] scan_limit (1..100)
--   ARGV[8] lane_id
--   ARGV[9] grant_ttl_ms (for ADMIT)
--   Reply   OK(<the lease reply of grant_lease>) or EMPTY(blocked_count) when nothing
--           here can be taken, or ADMIT(execution_id, grant_expires_at, kind,
--           budget_ids, quota_policy_id) for an execution that carries budgets or a
--           quota: a grant is written instead of a lease, and the caller runs admission
--           before claiming with it. A reclaimable execution past its reclaim cap is
--           failed on the way (max_reclaims_exceeded).
--   Errors  invalid_input, invalid_capabilities
redis.register_function('ff_claim_next', function(keys, args)
  local p, bad = lease_params(args[1], args[2], args[4], args[5], args[6])
  if not p then return bad end
  local problem = caps_problem(split_csv(args[3]))
  if problem then return err('invalid_capabilities', 'worker:' .. problem) end
  local limit = scan_limit(args[7])
  if not limit then return err('invalid_input', 'scan_limit must be 1..100') end
  local g = {worker_id = args[1], wiid = args[2], lane = args[8] or '', cap_hash = '',
    ttl = arg_int(args[9]), route = '', admission = '', caps = args[3] or ''}
  if g.ttl == nil or g.ttl < facts.GRANT_TTL_MIN_MS or g.ttl > facts.GRANT_TTL_MAX_MS then
    return err('invalid_input', 'grant_ttl_ms out of range: ' .. tostring(args[9]))
  end
  local reply, blocked = claim_one(keys, p, g, args[3] or '', limit, now_ms())
  if not reply then return {1, 'EMPTY', fmt(blocked)} end
  return reply
end)

-- ff_claim_batch: ff_claim_next for up to n leases at once (one per free slot of the
-- worker), taken in the same order n calls of ff_claim_next would take them.
--   KEYS[1]      ff:idx:{fp:N}:lane:<lane>:reclaimable
--   KEYS[2]      ff:idx:{fp:N}:lane:<lane>:eligible
--   ARGV[1]      worker_id
--   ARGV[2]      worker_instance_id
--   ARGV[3]      worker_capabilities_csv
--   ARGV[4]      lease_ttl_ms
--   ARGV[5]      scan_limit (1..100)
--   ARGV[4+2i]   lease_id of lease i (i = 1..n, n 1..100)
--   ARGV[5+2i]   attempt_id of lease i
--   Reply   OK(blocked_count, {lease reply 1}, ..., {lease reply k}), k 1..n, each lease
--           reply the whole {1, 'OK', ...} envelope of ff_claim_next; ADMIT(the same,
--           k 0..n) when the scan stopped at an execution that carries budgets or a
--           quota (no grant written: ff_claim_next runs its admission); or
--           EMPTY(blocked_count) when nothing here can be taken
--   Errors  invalid_input, invalid_capabilities
redis.register_function('ff_claim_batch', function(keys, args)
  local count = (#args - 5) / 2
  if count < 1 or count > 100 or count ~= math.floor(count) then
    return err('invalid_input', '1..100 (lease_id, attempt_id) pairs are required')
  end
  local params = {}
  for i = 1, count do
    local p, bad = lease_params(args[1], args[2], args[4 + 2 * i], args[4], args[5 + 2 * i])
    if not p then return bad end
    params[i] = p
  end
  local problem = caps_problem(split_csv(args[3]))
  if problem then return err('invalid_capabilities', 'worker:' .. problem) end
  local limit = scan_limit(args[5])
  if not limit then return err('invalid_input', 'scan_limit must be 1..100') end
  local now = now_ms()
  local out, total_blocked = {1, 'OK', '0'}, 0
  for i = 1, count do
    local reply, blocked, admit = claim_one(keys, params[i], nil, args[3] or '', limit, now)
    total_blocked = total_blocked + blocked
    if admit then out[2] = 'ADMIT' end
    if not reply then break end
    out[#out + 1] = reply
  end
  if #out == 3 and out[2] == 'OK' then return {1, 'EMPTY', fmt(total_blocked)} end
  out[3] = fmt(total_blocked)
  return out
end)

-- ff_issue_reclaim_grant: a grant to reclaim an execution whose lease expired or was
-- revoked. Nothing is written when the reclaim cap is reached (the reclaim itself
-- fails the execution then).
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] worker_id
--   ARGV[3] worker_instance_id
--   ARGV[4] lane_id
--   ARGV[5] capability_hash
--   ARGV[6] grant_ttl_ms
--   ARGV[7] route_snapshot_json
--   ARGV[8] admission_summary
--   ARGV[9] worker_capabilities_csv (sorted)
--   Reply   OK(execution_id, grant_expires_at) or RECLAIM_CAP_EXCEEDED(reclaim_count)
--   Errors  execution_not_found, invalid_input, invalid_capabilities,
--           execution_not_reclaimable, grant_already_exists, capability_mismatch(missing)
redis.register_function('ff_issue_reclaim_grant', function(keys, args)
  local g, bad = grant_params(args, 2)
  if not g then return bad end
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  if not is_reclaimable(core) then
    return err('execution_not_reclaimable', core.lifecycle_phase or '', core.ownership_state or '')
  end
  local count = to_int(core.lease_reclaim_count, 0)
  if count >= reclaim_cap(ctx) then return {1, 'RECLAIM_CAP_EXCEEDED', fmt(count)} end
  if redis.call('EXISTS', ctx.k('claim_grant')) == 1 then return err('grant_already_exists') end
  local now = now_ms()
  local missing = missing_caps(core.required_capabilities, g.caps)
  if missing ~= '' then
    redis.call('HSET', ctx.key, 'last_capability_mismatch_at', fmt(now))
    return err('capability_mismatch', missing, '')
  end
  return ok(ctx.eid, fmt(write_grant(ctx, g, now)))
end)

-- ff_change_priority
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] new_priority (clamped to 0..PRIORITY_MAX)
--   Reply   OK(old_priority, new_priority)
--   Errors  execution_not_found, invalid_input, execution_not_eligible
redis.register_function('ff_change_priority', function(keys, args)
  local priority = arg_int(args[2])
  if priority == nil then return bad_number('new_priority', args[2]) end
  priority = math.max(0, math.min(facts.PRIORITY_MAX, priority))
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  if not is_claimable(core) then
    return err('execution_not_eligible', core.lifecycle_phase or '', core.eligibility_state or '')
  end
  local old = core.priority or '0'
  core.priority = fmt(priority)
  redis.call('HSET', ctx.key, 'priority', core.priority, 'last_mutation_at', fmt(now_ms()))
  add_eligible(ctx)
  return ok(old, core.priority)
end)

-- ff_promote_delayed (delayed_promoter scanner; idempotent)
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] lane_id
--   Reply   OK(outcome): promoted | not_yet_due | not_found_cleaned |
--           not_runnable_cleaned | not_delayed_cleaned
--   attempt_state is left as it was: a delayed retry stays pending_retry_attempt and a
--   worker delay stays attempt_interrupted, so the next claim takes the right path.
--   Errors  invalid_input
redis.register_function('ff_promote_delayed', function(keys, args)
  local bad = required(args, 'execution_id', 'lane_id')
  if bad then return bad end
  local tag = tag_of(keys[1])
  local ctx = load_exec(keys[1], args[1])
  if not ctx then
    redis.call('ZREM', lane_key(tag, args[2], 'delayed'), args[1])
    return ok('not_found_cleaned')
  end
  local core = ctx.core
  local delayed_set = lane_key(tag, ctx.lane, 'delayed')
  if core.lifecycle_phase ~= 'runnable' then
    redis.call('ZREM', delayed_set, ctx.eid)
    return ok('not_runnable_cleaned')
  end
  if core.eligibility_state ~= 'not_eligible_until_time' then
    redis.call('ZREM', delayed_set, ctx.eid)
    return ok('not_delayed_cleaned')
  end
  local now = now_ms()
  if to_int(core.delay_until, 0) > now then return ok('not_yet_due') end
  redis.call('ZREM', delayed_set, ctx.eid)
  write_state(ctx, {eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
    blocking_detail = ''}, now, {'delay_until', ''})
  add_eligible(ctx)
  return ok('promoted')
end)

-- ff_update_progress (lease holder; lite fence: lease id and epoch)
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] lease_id
--   ARGV[3] lease_epoch
--   ARGV[4] progress_pct ("" = keep)
--   ARGV[5] progress_message
--   Reply   OK()
--   Errors  execution_not_found, invalid_input, execution_not_active(+4), lease_revoked,
--           lease_expired, stale_lease
redis.register_function('ff_update_progress', function(keys, args)
  local pct = arg_int(args[4])
  if is_set(args[4]) and (pct == nil or pct < 0 or pct > 100) then
    return err('invalid_input', 'progress_pct must be 0..100, got: ' .. tostring(args[4]))
  end
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  local now = now_ms()
  if core.lifecycle_phase ~= 'active' then return not_active(core) end
  if core.ownership_state == 'lease_revoked' then return err('lease_revoked') end
  if core.ownership_state ~= 'leased' or to_int(core.lease_expires_at, 0) <= now then
    return err('lease_expired')
  end
  if core.current_lease_id ~= args[2] or core.current_lease_epoch ~= args[3] then
    return err('stale_lease')
  end
  local fields = {'progress_updated_at', fmt(now), 'last_mutation_at', fmt(now)}
  if pct then
    fields[#fields + 1] = 'progress_pct'
    fields[#fields + 1] = fmt(pct)
  end
  if is_set(args[5]) then
    fields[#fields + 1] = 'progress_message'
    fields[#fields + 1] = args[5]
  end
  redis.call('HSET', ctx.key, unpack(fields))
  return ok()
end)

-- ff_block_execution_for_admission: park an eligible execution that cannot be admitted.
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] blocking_reason (a key of facts.BLOCKS: waiting_for_budget |
--           waiting_for_quota | waiting_for_capable_worker | paused_by_operator)
--   ARGV[3] blocking_detail
--   A claim grant the scheduler issued before refusing admission is deleted.
--   Reply   OK('blocked') | ALREADY_SATISFIED('not_eligible')
--   Errors  execution_not_found, invalid_blocking_reason
redis.register_function('ff_block_execution_for_admission', function(keys, args)
  if not facts.BLOCKS[args[2] or ''] then return err('invalid_blocking_reason', args[2] or '') end
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  if not is_claimable(ctx.core) then
    return already('not_eligible')
  end
  redis.call('DEL', ctx.k('claim_grant'))
  block(ctx, args[2], args[3] or '', now_ms())
  return ok('blocked')
end)

-- ff_unblock_execution (unblock scanner): back to eligible once the block has cleared.
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] expected_blocking_reason (a key of facts.BLOCKS)
--   ARGV[3] lane_id
--   Reply   OK('unblocked') | ALREADY_SATISFIED('not_blocked') | OK('not_found_cleaned')
--   Errors  invalid_blocking_reason
redis.register_function('ff_unblock_execution', function(keys, args)
  local target = facts.BLOCKS[args[2] or '']
  if not target then return err('invalid_blocking_reason', args[2] or '') end
  local tag = tag_of(keys[1])
  local ctx = load_exec(keys[1], args[1])
  if not ctx then
    redis.call('ZREM', lane_key(tag, args[3] or '', target.index), args[1])
    return ok('not_found_cleaned')
  end
  local core = ctx.core
  local blocked_set = lane_key(tag, ctx.lane, target.index)
  if core.lifecycle_phase ~= 'runnable' or core.blocking_reason ~= args[2] then
    redis.call('ZREM', blocked_set, ctx.eid)
    return already('not_blocked')
  end
  redis.call('ZREM', blocked_set, ctx.eid)
  local attempt = core.attempt_state
  write_state(ctx, {eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
    blocking_detail = '',
    attempt_state = (attempt == 'none' or attempt == '') and 'pending_first_attempt' or nil},
    now_ms(), nil)
  add_eligible(ctx)
  return ok('unblocked')
end)

-- ff_register_worker: (re)announce a worker instance; the same instance id may register
-- again at once after a restart.
--   KEYS[1] ff:worker:{<ns>}:<instance>:alive
--   KEYS[2] ff:worker:{<ns>}:<instance>:caps
--   KEYS[3] ff:idx:{<ns>}:workers
--   ARGV[1] worker_instance_id
--   ARGV[2] worker_id
--   ARGV[3] lanes_csv
--   ARGV[4] caps_csv
--   ARGV[5] ttl_ms
--   Reply   OK('registered') | OK('refreshed')
--   Errors  invalid_input
redis.register_function('ff_register_worker', function(keys, args)
  local ttl = arg_int(args[5])
  if ttl == nil or ttl <= 0 then return bad_number('ttl_ms', args[5]) end
  if not is_set(args[1]) or not is_set(args[2]) then
    return err('invalid_input', 'worker_instance_id and worker_id are required')
  end
  local now = fmt(now_ms())
  local existed = redis.call('EXISTS', keys[1]) == 1
  redis.call('SET', keys[1], '1', 'PX', fmt(ttl))
  redis.call('HSET', keys[2], 'worker_id', args[2], 'lanes_csv', args[3] or '',
    'caps_csv', args[4] or '', 'ttl_ms', fmt(ttl), 'registered_at_ms', now,
    'last_heartbeat_ms', now)
  redis.call('PEXPIRE', keys[2], fmt(ttl))
  redis.call('SADD', keys[3], args[1])
  return ok(existed and 'refreshed' or 'registered')
end)

-- ff_heartbeat_worker
--   KEYS[1] ff:worker:{<ns>}:<instance>:alive
--   KEYS[2] ff:worker:{<ns>}:<instance>:caps
--   Reply   OK('refreshed', ttl_ms) | OK('not_registered')
redis.register_function('ff_heartbeat_worker', function(keys, args)
  local ttl = arg_int(redis.call('HGET', keys[2], 'ttl_ms'))
  if ttl == nil or redis.call('PEXPIRE', keys[1], fmt(ttl)) == 0 then
    return ok('not_registered')
  end
  redis.call('PEXPIRE', keys[2], fmt(ttl))
  redis.call('HSET', keys[2], 'last_heartbeat_ms', fmt(now_ms()))
  return ok('refreshed', fmt(ttl))
end)

-- ff_deregister_worker: a worker leaving cleanly.
--   KEYS[1] ff:worker:{<ns>}:<instance>:alive
--   KEYS[2] ff:worker:{<ns>}:<instance>:caps
--   KEYS[3] ff:idx:{<ns>}:workers
--   ARGV[1] worker_instance_id
--   Reply   OK()
--   Errors  invalid_input
redis.register_function('ff_deregister_worker', function(keys, args)
  local bad = required(args, 'worker_instance_id')
  if bad then return bad end
  redis.call('DEL', keys[1], keys[2])
  redis.call('SREM', keys[3], args[1])
  return ok()
end)
