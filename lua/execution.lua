-- Execution lifecycle: create, complete, fail (with retry), cancel, delay, expire,
-- replay, tags and the retention purge.
-- @requires util, facts, record, lease, flow, budget

local fmt, ok, already, err = util.fmt, util.ok, util.already, util.err
local tags_problem = util.tags_problem
local is_set, to_int, arg_int, bad_number = util.is_set, util.to_int, util.arg_int, util.bad_number
local tag_of, decode_json, now_ms = util.tag_of, util.decode_json, util.now_ms
local caps_problem = util.caps_problem
local exec_key, attempt_key, stream_key = util.exec_key, util.attempt_key, util.stream_key
local idx_key, lane_key = util.idx_key, util.lane_key
local required = util.required
local load_exec, new_exec, not_found, not_active = record.load_exec, record.new_exec,
  record.not_found, record.not_active
local write_state, add_eligible, history = record.write_state, record.add_eligible, record.history
local release_lease_indexes, close_stream = record.release_lease_indexes, record.close_stream
local end_attempt, finish, load_policy = record.end_attempt, record.finish, record.load_policy
local leave_terminal, HOLDER_FIELDS = record.leave_terminal, record.HOLDER_FIELDS
local requeue = record.requeue
local holder_check, already_ended_by_caller = lease.holder_check, lease.already_ended_by_caller
local replay_skipped = flow.replay_skipped
local attachment_fields = budget.attachment_fields

-- Validates the policy JSON the way the Python Structs do for the fields Lua relies on.
-- Returns decoded policy (or {}), required caps CSV, or nil + error reply.
local function check_policy(raw)
  if not is_set(raw) or raw == '{}' then return {}, '' end
  local policy = decode_json(raw)
  if policy == nil then return nil, nil, err('invalid_policy_json', 'malformed') end
  local routing = policy.routing_requirements
  if routing == nil or routing == cjson.null then return policy, '' end
  if type(routing) ~= 'table' then
    return nil, nil, err('invalid_policy_json', 'routing_requirements:not_object')
  end
  local required = routing.required_capabilities
  if required == nil or required == cjson.null then return policy, '' end
  if type(required) ~= 'table' then return nil, nil, err('invalid_capabilities', 'required:not_array') end
  local tokens, seen = {}, {}
  for _, token in ipairs(required) do
    if type(token) ~= 'string' then
      return nil, nil, err('invalid_capabilities', 'required:non_string_token')
    end
    if token == '' then return nil, nil, err('invalid_capabilities', 'required:empty_token') end
    if string.find(token, ',', 1, true) then
      return nil, nil, err('invalid_capabilities', 'required:comma_in_token')
    end
    if string.find(token, '[%z\1-\32\127]') then
      return nil, nil, err('invalid_capabilities', 'required:control_or_whitespace')
    end
    if not seen[token] then
      seen[token] = true
      tokens[#tokens + 1] = token
    end
  end
  local problem = caps_problem(tokens)
  if problem then return nil, nil, err('invalid_capabilities', 'required:' .. problem) end
  table.sort(tokens)
  return policy, table.concat(tokens, ',')
end

-- ff_create_execution
--   KEYS[1]  exec core
--   ARGV[1]  execution_id
--   ARGV[2]  namespace
--   ARGV[3]  lane_id
--   ARGV[4]  execution_kind
--   ARGV[5]  priority (clamped to 0..PRIORITY_MAX)
--   ARGV[6]  creator_identity
--   ARGV[7]  policy_json
--   ARGV[8]  input_payload
--   ARGV[9]  payload_encoding
--   ARGV[10] delay_until ("" or ms)
--   ARGV[11] dedup_ttl_ms
--   ARGV[12] idempotency_key
--   ARGV[13] tags_json (object)
--   ARGV[14] execution_deadline_at ("" or ms)
--   ARGV[15] partition_id
--   Reply    OK(execution_id, public_state) or DUPLICATE(existing execution_id)
--   Errors  invalid_input, invalid_policy_json, invalid_capabilities
redis.register_function('ff_create_execution', function(keys, args)
  local eid, ns, lane = args[1], args[2] or '', args[3]
  local tag = tag_of(keys[1])
  local priority = arg_int(args[5] ~= '' and args[5] or '0')
  if priority == nil then return bad_number('priority', args[5]) end
  if priority < 0 then priority = 0 end
  if priority > facts.PRIORITY_MAX then priority = facts.PRIORITY_MAX end
  local delay_until = arg_int(args[10])
  if is_set(args[10]) and delay_until == nil then return bad_number('delay_until', args[10]) end
  local dedup_ttl = arg_int(args[11]) or 0
  local deadline = arg_int(args[14])
  if is_set(args[14]) and deadline == nil then
    return bad_number('execution_deadline_at', args[14])
  end
  if not is_set(lane) or not is_set(eid) then return err('invalid_input', 'eid and lane_id required') end
  local idem = is_set(args[12]) and ('ff:idem:' .. tag .. ':' .. ns .. ':' .. args[12]) or nil
  if idem then
    local existing = redis.call('GET', idem)
    if existing then return {1, 'DUPLICATE', existing} end
  end
  if redis.call('EXISTS', keys[1]) == 1 then return {1, 'DUPLICATE', eid} end
  local policy, caps, bad = check_policy(args[7])
  if not policy then return bad end
  local attached, bad_ids = attachment_fields(policy)
  if not attached then return bad_ids end
  local tags = decode_json(args[13])

  local now = now_ms()
  local timeout_policy = type(policy.timeout_policy) == 'table' and policy.timeout_policy or {}
  if deadline == nil and to_int(timeout_policy.execution_deadline_ms, 0) > 0 then
    deadline = now + to_int(timeout_policy.execution_deadline_ms, 0)
  end
  local delayed = delay_until ~= nil and delay_until > now
  local ctx = new_exec(keys[1], eid, lane)
  -- Unset fields (ids of a lease or attempt not yet taken, timestamps not yet reached)
  -- are left out: an absent field reads as unset.
  local fields = {
    'execution_id', eid, 'namespace', ns, 'lane_id', lane, 'execution_kind', args[4] or '',
    'partition_id', args[15] or '', 'priority', fmt(priority),
    'creator_identity', args[6] or '', 'payload_encoding', args[9] or '',
    'total_attempt_count', '0', 'current_lease_epoch', '0', 'current_lane', lane,
    'retry_count', '0', 'replay_count', '0', 'lease_reclaim_count', '0', 'created_at', fmt(now),
  }
  if delayed then
    fields[#fields + 1] = 'delay_until'
    fields[#fields + 1] = fmt(delay_until)
  end
  if deadline then
    fields[#fields + 1] = 'execution_deadline_at'
    fields[#fields + 1] = fmt(deadline)
  end
  if caps ~= '' then
    fields[#fields + 1] = 'required_capabilities'
    fields[#fields + 1] = caps
  end
  for _, v in ipairs(attached) do fields[#fields + 1] = v end
  if delayed then
    write_state(ctx, {lifecycle_phase = 'runnable', ownership_state = 'unowned',
      eligibility_state = 'not_eligible_until_time', blocking_reason = 'waiting_for_delay',
      blocking_detail = '', terminal_outcome = 'none', attempt_state = 'pending_first_attempt'},
      now, fields)
    redis.call('ZADD', lane_key(tag, lane, 'delayed'), fmt(delay_until), eid)
  else
    write_state(ctx, {lifecycle_phase = 'runnable', ownership_state = 'unowned',
      eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
      blocking_detail = '', terminal_outcome = 'none', attempt_state = 'pending_first_attempt'},
      now, fields)
    ctx.core.priority = fmt(priority)
    ctx.core.created_at = fmt(now)
    add_eligible(ctx)
  end
  if is_set(args[8]) then redis.call('SET', ctx.k('payload'), args[8]) end
  if is_set(args[7]) and args[7] ~= '{}' then redis.call('SET', ctx.k('policy'), args[7]) end
  if tags then
    local flat = {}
    for k, v in pairs(tags) do
      if type(v) == 'string' then
        flat[#flat + 1] = k
        flat[#flat + 1] = v
      end
    end
    if #flat > 0 then redis.call('HSET', ctx.k('tags'), unpack(flat)) end
  end
  redis.call('ZADD', idx_key(tag, 'all_executions'), 0, eid)
  if deadline then redis.call('ZADD', idx_key(tag, 'execution_deadline'), fmt(deadline), eid) end
  if idem and dedup_ttl > 0 then redis.call('SET', idem, eid, 'PX', fmt(dedup_ttl), 'NX') end
  return ok(eid, ctx.core.public_state)
end)

-- ff_complete_execution
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] lease_id
--   ARGV[3] lease_epoch
--   ARGV[4] attempt_id
--   ARGV[5] result_payload
--   ARGV[6] source (operator_override: no fence needed)
--   Reply   OK('completed'); ALREADY_SATISFIED('completed') when the same lease holder
--           repeats a call that already succeeded
--   Errors  execution_not_found, fence_required, partial_fence_triple,
--           execution_not_active(+4), lease_revoked, lease_expired, stale_lease
redis.register_function('ff_complete_execution', function(keys, args)
  local ctx = load_exec(keys[1], args[1], HOLDER_FIELDS)
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  if already_ended_by_caller(core, args[3], args[4], 'success') then
    return already('completed')
  end
  local now = now_ms()
  local bad = holder_check(ctx, args[2], args[3], args[4], args[6], now)
  if bad then return bad end
  end_attempt(ctx, 'ended_success', now, nil)
  close_stream(ctx, core.current_attempt_index, 'attempt_success', now)
  if is_set(args[5]) then redis.call('SET', ctx.k('result'), args[5]) end
  finish(ctx, 'success', now, nil)
  return ok('completed')
end)

-- Retry decision and delay from the stored policy (ff/core/policy.py; its defaults come
-- through facts.RETRY_DEFAULTS).
-- Returns delay_ms or nil when no retry is left.
local function retry_delay(ctx, category, retryable)
  if retryable == '0' then return nil end
  local rp = load_policy(ctx).retry_policy
  if type(rp) ~= 'table' then return nil end
  local defaults = facts.RETRY_DEFAULTS
  local max_retries = to_int(rp.max_retries, defaults.max_retries)
  local done = to_int(ctx.core.retry_count, 0)
  if done >= max_retries then return nil end
  local allowed = rp.retryable_categories
  if type(allowed) == 'table' and #allowed > 0 then
    local found = false
    for _, c in ipairs(allowed) do if c == category then found = true end end
    if not found then return nil end
  end
  local backoff = type(rp.backoff) == 'table' and rp.backoff or {}
  if backoff.type == 'fixed' then
    return math.max(0, to_int(backoff.delay_ms, defaults.fixed_delay_ms))
  end
  local initial = tonumber(backoff.initial_delay_ms) or defaults.initial_delay_ms
  local cap = tonumber(backoff.max_delay_ms) or defaults.max_delay_ms
  local mult = tonumber(backoff.multiplier) or defaults.multiplier
  return math.max(0, math.floor(math.min(initial * mult ^ done, cap)))
end

-- ff_fail_execution
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] lease_id
--   ARGV[3] lease_epoch
--   ARGV[4] attempt_id
--   ARGV[5] failure_reason
--   ARGV[6] source
--   ARGV[7] failure_category (worker_shutdown: retried at once, not counted)
--   ARGV[8] retryable ("0" = never retry; else per retry_policy)
--   Reply   OK('retry_scheduled', delay_until) | OK('terminal_failed');
--           ALREADY_SATISFIED(same) when the same holder repeats a call that landed
--   Errors  as ff_complete_execution
redis.register_function('ff_fail_execution', function(keys, args)
  local ctx = load_exec(keys[1], args[1], HOLDER_FIELDS)
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  if already_ended_by_caller(core, args[3], args[4], 'failed') then
    return already('terminal_failed')
  end
  if core.lifecycle_phase == 'runnable' and core.attempt_state == 'pending_retry_attempt'
      and is_set(args[3]) and core.current_lease_epoch == args[3] then
    return already('retry_scheduled', core.delay_until or '')
  end
  local now = now_ms()
  local bad = holder_check(ctx, args[2], args[3], args[4], args[6], now)
  if bad then return bad end
  local reason, category = args[5] or '', args[7] or ''
  local idx = core.current_attempt_index
  end_attempt(ctx, 'ended_failure', now, {'failure_reason', reason, 'failure_category', category})
  close_stream(ctx, idx, 'attempt_failure', now)
  -- A worker shutting down gives the attempt back: retried at once, not counted.
  local handed_back = category == 'worker_shutdown' and args[8] ~= '0'
  local delay = handed_back and 0 or retry_delay(ctx, category, args[8])
  if delay == nil then
    history(ctx, 'released', 'failed_terminal')
    finish(ctx, 'failed', now, {'failure_reason', reason})
    return ok('terminal_failed')
  end
  local due = now + delay
  history(ctx, 'released', 'failed_retry_scheduled')
  release_lease_indexes(ctx)
  local fields = {'pending_retry_reason', reason, 'pending_previous_attempt_index', idx,
    'retry_count', fmt(to_int(core.retry_count, 0) + (handed_back and 0 or 1)),
    'current_attempt_id', '',
    'current_lease_id', '', 'current_worker_id', '', 'current_worker_instance_id', '',
    'lease_expires_at', '', 'failure_reason', reason}
  requeue(ctx, due, 'waiting_for_retry_backoff', 'pending_retry_attempt', now, fields)
  return ok('retry_scheduled', fmt(due))
end)

-- Cancels a live execution (the caller has checked it may): ends its attempt, closes
-- its stream and suspension, and finishes it as cancelled.
local function cancel(ctx, reason, source, now)
  local core = ctx.core
  local phase = core.lifecycle_phase
  if phase == 'active' or phase == 'suspended' then
    end_attempt(ctx, 'ended_cancelled', now, {'failure_reason', 'cancelled: ' .. reason})
    close_stream(ctx, core.current_attempt_index, 'attempt_cancelled', now)
  end
  if phase == 'active' then history(ctx, 'released', 'cancelled') end
  if phase == 'suspended' and is_set(core.current_suspension_id) then
    redis.call('HSET', ctx.k('suspension:current'), 'closed_at', fmt(now),
      'close_reason', 'cancelled')
  end
  finish(ctx, 'cancelled', now, {'cancellation_reason', reason,
    'cancelled_by', source ~= '' and source or ctx.eid, 'current_suspension_id', '',
    'current_waitpoint_id', ''})
end

-- ff_cancel_execution
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] reason
--   ARGV[3] source
--   ARGV[4] lease_id
--   ARGV[5] lease_epoch
--   Reply   OK('cancelled', previous_phase); ALREADY_SATISFIED('cancelled', 'terminal')
--           when it is already cancelled
--   Errors  execution_not_found, execution_not_active(+4) (terminal otherwise),
--           fence_required (a non-operator source cancelling an active execution must
--           name its lease), lease_revoked, stale_lease
redis.register_function('ff_cancel_execution', function(keys, args)
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  local reason, source = args[2] or '', args[3] or ''
  if core.lifecycle_phase == 'terminal' then
    if core.terminal_outcome == 'cancelled' then return already('cancelled', 'terminal') end
    return not_active(core)
  end
  local phase = core.lifecycle_phase
  if phase == 'active' and source ~= 'operator_override' then
    if core.ownership_state == 'lease_revoked' then return err('lease_revoked') end
    if not is_set(args[4]) then return err('fence_required') end
    if args[4] ~= core.current_lease_id or args[5] ~= core.current_lease_epoch then
      return err('stale_lease')
    end
  end
  cancel(ctx, reason, source, now_ms())
  return ok('cancelled', phase)
end)

-- ff_delay_execution: the lease holder gives the attempt back until `delay_until`.
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] lease_id
--   ARGV[3] lease_epoch
--   ARGV[4] attempt_id
--   ARGV[5] delay_until (ms)
--   ARGV[6] source
--   Reply   OK(delay_until)
--   Errors  invalid_input and those of ff_complete_execution
redis.register_function('ff_delay_execution', function(keys, args)
  local delay_until = arg_int(args[5])
  if delay_until == nil then return bad_number('delay_until', args[5]) end
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local now = now_ms()
  local bad = holder_check(ctx, args[2], args[3], args[4], args[6], now)
  if bad then return bad end
  local idx = ctx.core.current_attempt_index
  redis.call('HSET', attempt_key(ctx.tag, ctx.eid, idx), 'attempt_state', 'suspended',
    'suspension_id', 'worker_delay', 'suspended_at', fmt(now))
  history(ctx, 'released', 'worker_delay')
  release_lease_indexes(ctx)
  local fields = {'current_lease_id', '', 'current_worker_id', '',
    'current_worker_instance_id', '', 'lease_expires_at', ''}
  requeue(ctx, delay_until, 'waiting_for_delay', 'attempt_interrupted', now, fields)
  return ok(fmt(delay_until))
end)

-- ff_expire_execution (attempt_timeout and execution_deadline scanners; idempotent)
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] expire_reason (attempt_timeout | execution_deadline)
--   Reply   OK(outcome[, previous_phase]): outcome expired (with the phase it left) |
--           already_terminal | not_found_cleaned | not_due
--   Errors  invalid_input
redis.register_function('ff_expire_execution', function(keys, args)
  local bad = required(args, 'execution_id')
  if bad then return bad end
  local tag = tag_of(keys[1])
  local reason = is_set(args[2]) and args[2] or 'attempt_timeout'
  local ctx = load_exec(keys[1], args[1])
  if not ctx then
    redis.call('ZREM', idx_key(tag, 'attempt_timeout'), args[1])
    redis.call('ZREM', idx_key(tag, 'execution_deadline'), args[1])
    return ok('not_found_cleaned')
  end
  local core = ctx.core
  if core.lifecycle_phase == 'terminal' then
    redis.call('ZREM', idx_key(tag, 'attempt_timeout'), args[1])
    redis.call('ZREM', idx_key(tag, 'execution_deadline'), args[1])
    return ok('already_terminal')
  end
  local index = reason == 'execution_deadline' and 'execution_deadline' or 'attempt_timeout'
  local due = redis.call('ZSCORE', idx_key(tag, index), args[1])
  local now = now_ms()
  if not due or tonumber(due) > now then return ok('not_due') end
  if reason == 'attempt_timeout' and core.lifecycle_phase ~= 'active' then
    redis.call('ZREM', idx_key(tag, 'attempt_timeout'), args[1])
    return ok('not_due')
  end
  local phase = core.lifecycle_phase
  if phase == 'active' or phase == 'suspended' then
    end_attempt(ctx, 'ended_failure', now, {'failure_reason', reason})
    close_stream(ctx, core.current_attempt_index, 'expired', now)
  end
  if phase == 'active' then history(ctx, 'released', 'expired:' .. reason) end
  if phase == 'suspended' and is_set(core.current_suspension_id) then
    redis.call('HSET', ctx.k('suspension:current'), 'closed_at', fmt(now),
      'close_reason', 'expired:' .. reason)
  end
  finish(ctx, 'expired', now, {'failure_reason', reason})
  return ok('expired', phase)
end)

-- ff_replay_execution: run a terminal execution again (new attempt of type replay). A
-- skipped flow member waits for its edges again (they are reset and re-resolved).
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] requested_by
--   ARGV[3] reason
--   Reply   OK(public_state): waiting, or for a skipped flow member waiting_children
--           (or what re-resolving its edges made of it)
--   Errors  execution_not_found, execution_not_terminal, max_replays_exhausted(limit)
redis.register_function('ff_replay_execution', function(keys, args)
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local core = ctx.core
  if core.lifecycle_phase ~= 'terminal' then
    return err('execution_not_terminal', core.lifecycle_phase or '')
  end
  local limit = to_int(load_policy(ctx).max_replay_count, facts.REPLAY_CAP_DEFAULT)
  if to_int(core.replay_count, 0) >= limit then
    return err('max_replays_exhausted', fmt(limit))
  end
  local now = now_ms()
  leave_terminal(ctx)
  local fields = {'replay_count', fmt(to_int(core.replay_count, 0) + 1),
    'pending_replay_attempt', '1', 'pending_replay_reason', args[3] or '',
    'pending_replay_requested_by', args[2] or '',
    'pending_previous_attempt_index', core.current_attempt_index or '', 'completed_at', ''}
  history(ctx, 'replay_initiated', args[3] or '')
  if core.terminal_outcome == 'skipped' and is_set(core.flow_id) then
    return ok(replay_skipped(ctx, now, fields))
  end
  local pub = write_state(ctx, {lifecycle_phase = 'runnable', ownership_state = 'unowned',
    eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
    blocking_detail = '', terminal_outcome = 'none', attempt_state = 'pending_replay_attempt'},
    now, fields)
  add_eligible(ctx)
  return ok(pub)
end)

-- ff_set_execution_tags
--   KEYS[1]    exec core
--   ARGV[2i-1] tag key i (lowercase `<caller>.<field>`)
--   ARGV[2i]   tag value i
--   Reply      OK(pair_count)
--   Errors  execution_not_found, invalid_input, invalid_tag_key(key)
redis.register_function('ff_set_execution_tags', function(keys, args)
  local bad = tags_problem(args)
  if bad then return bad end
  if redis.call('EXISTS', keys[1]) == 0 then return not_found('') end
  local tag = tag_of(keys[1])
  local eid = redis.call('HGET', keys[1], 'execution_id')
  redis.call('HSET', exec_key(tag, eid, 'tags'), unpack(args))
  redis.call('HSET', keys[1], 'last_mutation_at', fmt(now_ms()))
  return ok(fmt(#args / 2))
end)

-- ff_purge_execution (retention trimmer): delete every key of a terminal execution
-- whose retention has passed.
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] lane_id
--   ARGV[3] default_retention_ms
--   Reply   OK(outcome[, deleted_key_count]): outcome purged (with the count) | not_due |
--           not_terminal | not_found_cleaned
--   Errors  invalid_input
redis.register_function('ff_purge_execution', function(keys, args)
  local bad = required(args, 'execution_id', 'lane_id')
  if bad then return bad end
  local eid, lane = args[1], args[2]
  local tag = tag_of(keys[1])
  local ctx = load_exec(keys[1], eid)
  if not ctx then
    redis.call('ZREM', lane_key(tag, lane, 'terminal'), eid)
    redis.call('ZREM', idx_key(tag, 'all_executions'), eid)
    return ok('not_found_cleaned')
  end
  local core = ctx.core
  if core.lifecycle_phase ~= 'terminal' then return ok('not_terminal') end
  local stream_policy = load_policy(ctx).stream_policy
  local retention = type(stream_policy) == 'table' and to_int(stream_policy.retention_ttl_ms, nil)
    or arg_int(args[3]) or 86400000
  if to_int(core.completed_at, 0) + retention > now_ms() then return ok('not_due') end
  local doomed = {}
  local function add(key) doomed[#doomed + 1] = key end
  for _, suffix in ipairs({'payload', 'result', 'policy', 'tags', 'lease:current',
      'lease:history', 'claim_grant', 'attempts', 'signals', 'waitpoints', 'suspension:current',
      'suspension:current:satisfied_set', 'suspension:current:satisfied_set:signals',
      'suspension:current:member_map', 'deps:meta', 'deps:unresolved', 'deps:all_edges'}) do
    add(ctx.k(suffix))
  end
  local total = to_int(core.total_attempt_count, 0)
  for i = 0, total - 1 do
    local a = attempt_key(tag, eid, i)
    add(a) add(a .. ':usage') add(a .. ':policy') add(a .. ':summary')
    local s = stream_key(tag, eid, i)
    add(s) add(s .. ':meta')
  end
  for _, edge in ipairs(redis.call('SMEMBERS', ctx.k('deps:all_edges'))) do
    add(ctx.k('dep:' .. edge))
  end
  for _, wp in ipairs(redis.call('SMEMBERS', ctx.k('waitpoints'))) do
    local w = 'ff:wp:' .. tag .. ':' .. wp
    add(w) add(w .. ':signals') add(w .. ':condition')
  end
  for _, sig in ipairs(redis.call('ZRANGE', ctx.k('signals'), 0, -1)) do
    local s = 'ff:signal:' .. tag .. ':' .. sig
    add(s) add(s .. ':payload')
  end
  add(keys[1])
  local deleted = 0
  for i = 1, #doomed, 500 do
    deleted = deleted + redis.call('DEL', unpack(doomed, i, math.min(i + 499, #doomed)))
  end
  leave_terminal(ctx)
  redis.call('ZREM', idx_key(tag, 'all_executions'), eid)
  return ok('purged', fmt(deleted))
end)

execution.cancel = cancel
