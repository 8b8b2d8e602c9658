-- Index maintenance: checking that every execution of a partition sits in the lane
-- index its state implies, and putting it back where it does not.
-- @requires util, record

local fmt, ok, err, is_set, to_int = util.fmt, util.ok, util.err, util.is_set, util.to_int
local arg_int, hgetall, tag_of, now_ms = util.arg_int, util.hgetall, util.tag_of, util.now_ms
local exec_key, lane_key = util.exec_key, util.lane_key
local eligible_score, lane_index_of = record.eligible_score, record.lane_index_of

-- The score an execution has in `index` when the transition that put it there ran.
local function score_in(index, core, now)
  if index == 'eligible' or index == 'reclaimable' then return eligible_score(core) end
  local field = ({delayed = 'delay_until', active = 'lease_expires_at',
    terminal = 'completed_at'})[index] or 'last_transition_at'
  local value = to_int(core[field], nil)
  return fmt(value or now)
end

-- ff_reconcile_indexes (index_reconciler; idempotent): one page of the partition's
-- executions, in id order, each checked against the lane index its state implies; a
-- missing entry is added back. Atomic, so an execution moving between indexes while
-- the scanner runs is never mistaken for drift.
--   KEYS[1] ff:idx:{fp:N}:all_executions
--   ARGV[1] after: the last execution id of the previous page ("" = from the start)
--   ARGV[2] page_size (1..1000)
--   Reply   OK(next_after ("" when the partition is done), checked_count,
--           {execution_id_1, problem_1, ...}) with problem `missing_core` (reported
--           only) or the name of the lane index the execution was added back to
--   Errors  invalid_input
redis.register_function('ff_reconcile_indexes', function(keys, args)
  local size = arg_int(args[2])
  if size == nil or size < 1 or size > 1000 then
    return err('invalid_input', 'page_size must be 1..1000')
  end
  local tag = tag_of(keys[1])
  local start = is_set(args[1]) and ('(' .. args[1]) or '-'
  local ids = redis.call('ZRANGE', keys[1], start, '+', 'BYLEX', 'LIMIT', 0, size)
  local now = now_ms()
  local problems = {}
  for _, eid in ipairs(ids) do
    local core = hgetall(exec_key(tag, eid, 'core'))
    local index = lane_index_of(core)
    if core.execution_id == nil then
      problems[#problems + 1] = eid
      problems[#problems + 1] = 'missing_core'
    elseif index then
      local key = lane_key(tag, core.lane_id or '', index)
      if not redis.call('ZSCORE', key, eid) then
        redis.call('ZADD', key, score_in(index, core, now), eid)
        problems[#problems + 1] = eid
        problems[#problems + 1] = index
      end
    end
  end
  local next_after = #ids == size and ids[#ids] or ''
  return ok(next_after, fmt(#ids), problems)
end)

-- ff_upgrade_id_index (boot): turns a partition's all_executions SET, as libraries before
-- release 3 kept it, into the id-ordered ZSET (score 0) in place.
--   KEYS[1] ff:idx:{fp:N}:all_executions
--   Reply   OK(converted_member_count) (0: nothing to convert)
redis.register_function('ff_upgrade_id_index', function(keys, args)
  if redis.call('TYPE', keys[1]).ok ~= 'set' then return ok('0') end
  local members = redis.call('SMEMBERS', keys[1])
  redis.call('DEL', keys[1])
  for i = 1, #members, 500 do
    local batch = {}
    for j = i, math.min(i + 499, #members) do
      batch[#batch + 1] = 0
      batch[#batch + 1] = members[j]
    end
    redis.call('ZADD', keys[1], unpack(batch))
  end
  return ok(fmt(#members))
end)

-- ff_upgrade_terminal_counts (boot): a lane's per-outcome counters, counted from the
-- records when its terminal index has members but no counters yet (executions that
-- ended under a library before release 3).
--   KEYS[1] ff:idx:{fp:N}:lane:<lane>:terminal
--   KEYS[2] ff:idx:{fp:N}:lane:<lane>:terminal_counts
--   Reply   OK(counted_executions) (0: counters present or nothing to count)
redis.register_function('ff_upgrade_terminal_counts', function(keys, args)
  if redis.call('EXISTS', keys[2]) == 1 then return ok('0') end
  local tag = tag_of(keys[1])
  local members = redis.call('ZRANGE', keys[1], 0, -1)
  for _, eid in ipairs(members) do
    local outcome = redis.call('HGET', exec_key(tag, eid, 'core'), 'terminal_outcome')
    if outcome then redis.call('HINCRBY', keys[2], outcome, 1) end
  end
  return ok(fmt(#members))
end)
