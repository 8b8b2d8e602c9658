-- Flow cancel cascades in batches: the members a cancelled flow is owed, and the losing
-- siblings of a fired cancel_remaining group. Flow members share the flow's {fp:N}, so
-- one call cancels many of them atomically.
-- @requires util, record, execution

local ok, err, is_set, now_ms, tag_of = util.ok, util.err, util.is_set, util.now_ms, util.tag_of
local fmt, exec_key = util.fmt, util.exec_key
local load_exec, cancel = record.load_exec, execution.cancel

-- Cancels `eid` as the operator unless it has ended or is gone; true if it cancelled.
local function cancel_member(tag, eid, reason, now)
  local ctx = load_exec(exec_key(tag, eid, 'core'), eid)
  if not ctx or ctx.core.lifecycle_phase == 'terminal' then return false end
  cancel(ctx, reason, 'operator_override', now)
  return true
end

-- ff_cancel_flow_members: cancel a batch of the members a cancelled flow is owed, and
-- ack them in its backlog.
--   KEYS[1]   flow pending_cancels
--   KEYS[2]   ff:idx:{fp:N}:cancel_backlog
--   ARGV[1]   flow_id
--   ARGV[2]   reason
--   ARGV[3..] member execution ids (at most 1000)
--   Reply     OK(cancelled_count, still_owed_count)
--   Errors    invalid_input
redis.register_function('ff_cancel_flow_members', function(keys, args)
  if not is_set(args[1]) or #args > 1002 then
    return err('invalid_input', 'flow_id and at most 1000 members')
  end
  local tag, now, cancelled = tag_of(keys[1]), now_ms(), 0
  for i = 3, #args do
    if cancel_member(tag, args[i], args[2] or '', now) then cancelled = cancelled + 1 end
    redis.call('SREM', keys[1], args[i])
  end
  local remaining = redis.call('SCARD', keys[1])
  if remaining == 0 then redis.call('ZREM', keys[2], args[1]) end
  return ok(fmt(cancelled), fmt(remaining))
end)

-- ff_cancel_sibling_group: cancel the upstream siblings a fired cancel_remaining group
-- lists, then drain the group.
--   KEYS[1] ff:idx:{fp:N}:pending_cancel_groups
--   KEYS[2] edgegroup of the downstream
--   ARGV[1] flow_id
--   ARGV[2] downstream_execution_id
--   Reply   OK(cancelled_count, reason)
--   Errors  invalid_args
redis.register_function('ff_cancel_sibling_group', function(keys, args)
  if not is_set(args[1]) or not is_set(args[2]) then return err('invalid_args') end
  local group = redis.call('HMGET', keys[2], 'cancel_siblings_pending_flag',
    'cancel_siblings_reason', 'cancel_siblings_pending_members')
  local cancelled = 0
  local reason = is_set(group[2]) and group[2] or 'sibling_quorum_satisfied'
  if group[1] == 'true' then
    local tag, now = tag_of(keys[1]), now_ms()
    for eid in string.gmatch(group[3] or '', '[^|]+') do
      if cancel_member(tag, eid, reason, now) then cancelled = cancelled + 1 end
    end
    redis.call('HDEL', keys[2], 'cancel_siblings_pending_flag', 'cancel_siblings_pending_members')
  end
  redis.call('SREM', keys[1], args[1] .. '|' .. args[2])
  return ok(fmt(cancelled), reason)
end)
