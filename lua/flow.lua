-- Flows: DAGs of executions on one {fp:N} partition. Flow records and membership,
-- staged edges (revision, self-edge, duplicate and cycle checks), edge-group policies
-- (all_of, any_of, quorum k), edges applied to children, dependency resolution with data
-- passing, skip cascade and sibling cancel groups, flow cancel with its durable backlog,
-- flow tags, and the replay of a skipped member.
-- @requires util, facts, record, budget

local fmt, ok, already, err = util.fmt, util.ok, util.already, util.err
local tags_problem = util.tags_problem
local is_set, to_int, arg_int, hgetall = util.is_set, util.to_int, util.arg_int, util.hgetall
local tag_of, now_ms, exec_key, idx_key = util.tag_of, util.now_ms, util.exec_key, util.idx_key
local lane_key = util.lane_key
local required = util.required
local merge_ids = budget.merge_ids
local load_exec, write_state, add_eligible = record.load_exec, record.write_state,
  record.add_eligible
local end_attempt, close_stream, finish = record.end_attempt, record.close_stream, record.finish
local lane_index_of = record.lane_index_of

local TERMINAL_FLOW = {cancelled = true, completed = true, failed = true}
local POLICIES = {all_of = true, any_of = true, quorum = true}
local ON_SATISFIED = {cancel_remaining = true, let_run = true}
local CANCEL_POLICIES = {cancel_all = true, cancel_pending = true, flow_only = true}

local function flow_key(tag, fid, suffix)
  return 'ff:flow:' .. tag .. ':' .. fid .. ':' .. suffix
end

local function flow_not_found(fid)
  return err('flow_not_found', fid)
end

-- The flow record, or nil and the error reply (missing; terminal when `open_only`).
local function load_flow(core_key, fid, open_only)
  local flow = hgetall(core_key)
  if flow.flow_id == nil then return nil, flow_not_found(fid) end
  if open_only and TERMINAL_FLOW[flow.public_flow_state] then
    return nil, err('flow_already_terminal', flow.public_flow_state)
  end
  return flow
end

local function bump_revision(core_key, field, now)
  redis.call('HINCRBY', core_key, field, 1)
  redis.call('HSET', core_key, 'last_mutation_at', fmt(now))
  return redis.call('HINCRBY', core_key, 'graph_revision', 1)
end

-- Move a runnable child out of its lane index into blocked:dependencies.
local function block_child(ctx, detail, now, extra)
  local current = lane_index_of(ctx.core)
  if current and current ~= 'blocked:dependencies' then
    redis.call('ZREM', lane_key(ctx.tag, ctx.lane, current), ctx.eid)
  end
  write_state(ctx, {eligibility_state = 'blocked_by_dependencies',
    blocking_reason = 'waiting_for_children', blocking_detail = detail}, now, extra)
  redis.call('ZADD', lane_key(ctx.tag, ctx.lane, 'blocked:dependencies'),
    ctx.core.created_at or fmt(now), ctx.eid)
end

-- A child whose edges allow it to run: not held, and every edge satisfied (all_of) or
-- its group satisfied (any_of, quorum).
local function deps_ready(ctx, fid)
  local meta = redis.call('HMGET', ctx.k('deps:meta'), 'held', 'unsatisfied_required_count')
  if meta[1] == '1' then return false end
  if to_int(meta[2], 0) <= 0 then return true end
  local group = redis.call('HGET', flow_key(ctx.tag, fid, 'edgegroup:' .. ctx.eid), 'group_state')
  return group == 'satisfied'
end

-- What resolving edges found, for the caller to act on: `groups`, the children owed
-- sibling cancels; `lanes` (a set), the lanes of children made eligible, which the caller
-- marks in the lanes' work hints (they live under another tag).
local function new_findings()
  return {groups = {}, lanes = {}}
end

-- The findings as two reply arrays: groups, lanes.
local function findings_reply(found)
  local lanes = {}
  for lane in pairs(found.lanes) do lanes[#lanes + 1] = lane end
  return found.groups, lanes
end

local function promote_if_ready(ctx, fid, now, found)
  local core = ctx.core
  if core.lifecycle_phase ~= 'runnable' or core.eligibility_state ~= 'blocked_by_dependencies' then
    return false
  end
  if not deps_ready(ctx, fid) then return false end
  local attempt = core.attempt_state
  write_state(ctx, {eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
    blocking_detail = '',
    attempt_state = (attempt == nil or attempt == '' or attempt == 'none')
      and 'pending_first_attempt' or nil}, now, nil)
  redis.call('ZREM', lane_key(ctx.tag, ctx.lane, 'blocked:dependencies'), ctx.eid)
  add_eligible(ctx)
  found.lanes[ctx.lane] = true
  return true
end

-- An impossible dependency ends the child as skipped (its attempt, if one ran, ends
-- cancelled). finish() publishes the skip on ff:dag:completions.
local function skip_child(ctx, now)
  local phase = ctx.core.lifecycle_phase
  if phase == 'active' or phase == 'suspended' then
    end_attempt(ctx, 'ended_cancelled', now, {'failure_reason', 'dependency_impossible'})
    close_stream(ctx, ctx.core.current_attempt_index, 'dependency_impossible', now)
  end
  finish(ctx, 'skipped', now, {'failure_reason', 'dependency_impossible',
    'current_suspension_id', '', 'current_waitpoint_id', ''})
end

-- Upstream siblings of `child` (its incoming edges) that have not ended yet.
local function open_siblings(tag, fid, child)
  local open = {}
  for _, edge in ipairs(redis.call('SMEMBERS', flow_key(tag, fid, 'in:' .. child))) do
    local up = redis.call('HGET', flow_key(tag, fid, 'edge:' .. edge), 'upstream_execution_id')
    if up and redis.call('HGET', exec_key(tag, up, 'core'), 'lifecycle_phase') ~= 'terminal' then
      open[#open + 1] = up
    end
  end
  return open
end

-- Group bookkeeping of one resolved edge. Returns the group's verdict: 'satisfied',
-- 'impossible', 'pending' or 'already_fired', and whether siblings are owed a cancel.
local function count_in_group(tag, fid, child, outcome, now)
  local gkey = flow_key(tag, fid, 'edgegroup:' .. child)
  local group = hgetall(gkey)
  local variant = group.policy_variant or 'all_of'
  local counter = outcome == 'success' and 'succeeded' or
    (outcome == 'skipped' and 'skipped' or 'failed')
  local count = redis.call('HINCRBY', gkey, counter, 1)
  group[counter] = tostring(count)
  if group.group_state ~= nil and group.group_state ~= 'pending' then
    return 'already_fired', false
  end
  local verdict
  if variant == 'all_of' then
    if outcome ~= 'success' then verdict = 'impossible'
    elseif to_int(group.succeeded, 0) >= to_int(group.n, 0) then verdict = 'satisfied'
    else verdict = 'pending' end
  else
    local k = variant == 'any_of' and 1 or to_int(group.k, 1)
    local n = to_int(group.n, 0)
    local lost = to_int(group.failed, 0) + to_int(group.skipped, 0)
    if to_int(group.succeeded, 0) >= k then verdict = 'satisfied'
    elseif lost > n - k then verdict = 'impossible'
    else verdict = 'pending' end
  end
  if verdict == 'pending' then return verdict, false end
  local fields = {'group_state', verdict, 'satisfied_at', fmt(now)}
  local cancel = variant ~= 'all_of' and group.on_satisfied == 'cancel_remaining'
  if cancel then
    local siblings = open_siblings(tag, fid, child)
    fields[#fields + 1] = 'cancel_siblings_pending_flag'
    fields[#fields + 1] = 'true'
    fields[#fields + 1] = 'cancel_siblings_reason'
    fields[#fields + 1] = 'sibling_quorum_' .. verdict
    fields[#fields + 1] = 'cancel_siblings_pending_members'
    fields[#fields + 1] = table.concat(siblings, '|')
    redis.call('SADD', idx_key(tag, 'pending_cancel_groups'), fid .. '|' .. child)
  end
  redis.call('HSET', gkey, unpack(fields))
  return verdict, cancel
end

-- Settles edge `edge` of `child` if its upstream has ended. Appends cascade work to
-- `queue` (the out edges of a child it skipped) and its findings to `found`.
-- Returns the edge's outcome: satisfied, impossible, already_resolved, upstream_pending,
-- or missing.
local function resolve_edge(tag, child, edge, now, queue, found)
  local dkey = exec_key(tag, child, 'dep:' .. edge)
  local dep = hgetall(dkey)
  if dep.state == nil then return 'missing' end
  if dep.state ~= 'unsatisfied' then return 'already_resolved' end
  local up = redis.call('HMGET', exec_key(tag, dep.upstream_execution_id, 'core'),
    'lifecycle_phase', 'terminal_outcome')
  if up[1] ~= 'terminal' then return 'upstream_pending' end
  local outcome = up[2]
  local fid = dep.flow_id
  local ctx = load_exec(exec_key(tag, child, 'core'), child)
  if not ctx then return 'missing' end
  local success = outcome == 'success'
  redis.call('HSET', dkey, 'state', success and 'satisfied' or 'impossible',
    'last_resolved_at', fmt(now))
  redis.call('SREM', ctx.k('deps:unresolved'), edge)
  redis.call('HINCRBY', ctx.k('deps:meta'), 'unsatisfied_required_count', -1)
  if not success then redis.call('HINCRBY', ctx.k('deps:meta'), 'impossible_required_count', 1) end
  redis.call('HSET', ctx.k('deps:meta'), 'last_dependency_update_at', fmt(now))
  local verdict, cancel = count_in_group(tag, fid, child, outcome, now)
  if cancel then found.groups[#found.groups + 1] = child end
  local live = ctx.core.lifecycle_phase ~= 'terminal'
  if success and live and is_set(dep.data_passing_ref) and verdict ~= 'already_fired' then
    redis.call('COPY', exec_key(tag, dep.upstream_execution_id, 'result'), ctx.k('payload'),
      'REPLACE')
  end
  if verdict == 'impossible' and live then
    skip_child(ctx, now)
    for _, out in ipairs(redis.call('SMEMBERS', flow_key(tag, fid, 'out:' .. child))) do
      queue[#queue + 1] = out
    end
  elseif live then
    promote_if_ready(ctx, fid, now, found)
  end
  return success and 'satisfied' or 'impossible'
end

-- Resolves flow edges (ids in `queue`) and the cascade they cause, up to
-- RESOLVE_MAX_EDGES. Returns how many edges it settled.
local function drain_queue(tag, fid, queue, now, found)
  local settled, i = 0, 1
  while i <= #queue and i <= facts.RESOLVE_MAX_EDGES do
    local child = redis.call('HGET', flow_key(tag, fid, 'edge:' .. queue[i]),
      'downstream_execution_id')
    if child then
      local outcome = resolve_edge(tag, child, queue[i], now, queue, found)
      if outcome == 'satisfied' or outcome == 'impossible' then settled = settled + 1 end
    end
    i = i + 1
  end
  return settled
end

-- Every unresolved edge of a child whose upstream has ended, with their cascade.
local function resolve_child(ctx, fid, now, found)
  local queue = {}
  for _, edge in ipairs(redis.call('SMEMBERS', ctx.k('deps:unresolved'))) do
    queue[#queue + 1] = edge
  end
  return drain_queue(ctx.tag, fid, queue, now, found)
end

-- ff_create_flow
--   KEYS[1] flow core
--   KEYS[2] ff:idx:{fp:N}:flow_index
--   ARGV[1] flow_id
--   ARGV[2] flow_kind
--   ARGV[3] namespace
--   ARGV[4] budget_ids (CSV; every member added later carries them too)
--   Reply   OK(flow_id) | ALREADY_SATISFIED(flow_id)
--   Errors  invalid_input
redis.register_function('ff_create_flow', function(keys, args)
  local fid = args[1]
  if not is_set(fid) then return err('invalid_input', 'flow_id required') end
  if redis.call('EXISTS', keys[1]) == 1 then return already(fid) end
  local now = fmt(now_ms())
  redis.call('HSET', keys[1], 'flow_id', fid, 'flow_kind', args[2] or '',
    'namespace', args[3] or '', 'graph_revision', '0', 'node_count', '0', 'edge_count', '0',
    'public_flow_state', 'open', 'created_at', now, 'last_mutation_at', now)
  if is_set(args[4]) then redis.call('HSET', keys[1], 'budget_ids', args[4]) end
  redis.call('SADD', keys[2], fid)
  return ok(fid)
end)

-- ff_add_execution_to_flow: membership, back-pointer, flow index and counters at once.
--   KEYS[1] flow core
--   KEYS[2] exec core (same {fp:N}: minted for the flow)
--   ARGV[1] flow_id
--   ARGV[2] execution_id
--   ARGV[3] hold ("1": a member that has not started is held in waiting_children until
--           an applied edge releases it, so it cannot run before its edges exist; a
--           delay it had is dropped)
--   The flow's budget_ids are added to the member's.
--   Reply   OK(execution_id, node_count) | ALREADY_SATISFIED(execution_id, node_count)
--   Errors  invalid_input (partition mismatch), flow_not_found, flow_already_terminal,
--           execution_not_found, execution_already_in_flow(other flow_id)
redis.register_function('ff_add_execution_to_flow', function(keys, args)
  local fid, eid = args[1], args[2]
  local tag = tag_of(keys[1])
  if tag_of(keys[2]) ~= tag then
    return err('invalid_input', 'execution partition ' .. tag_of(keys[2]) ..
      ' != flow partition ' .. tag)
  end
  local flow, bad = load_flow(keys[1], fid, true)
  if not flow then return bad end
  local ctx = load_exec(keys[2], eid)
  if not ctx then return err('execution_not_found', eid) end
  local current = ctx.core.flow_id
  if is_set(current) and current ~= fid then return err('execution_already_in_flow', current) end
  local members = flow_key(tag, fid, 'members')
  redis.call('SADD', idx_key(tag, 'flow_index'), fid)
  if redis.call('SISMEMBER', members, eid) == 1 then
    return already(eid, flow.node_count or '0')
  end
  local now = now_ms()
  redis.call('SADD', members, eid)
  redis.call('HSET', keys[2], 'flow_id', fid, 'last_mutation_at', fmt(now))
  if is_set(flow.budget_ids) then
    redis.call('HSET', keys[2], 'budget_ids', merge_ids(ctx.core.budget_ids, flow.budget_ids))
  end
  redis.call('HSET', ctx.k('deps:meta'), 'flow_id', fid)
  bump_revision(keys[1], 'node_count', now)
  if args[3] == '1' and ctx.core.lifecycle_phase == 'runnable'
      and ctx.core.attempt_state == 'pending_first_attempt' then
    redis.call('HSET', ctx.k('deps:meta'), 'held', '1')
    block_child(ctx, 'held until its edges are applied', now, {'delay_until', ''})
  end
  return ok(eid, redis.call('HGET', keys[1], 'node_count'))
end)

-- Breadth-first walk along outgoing edges from `from`: true if `target` is reachable
-- (or the walk grew past CYCLE_CHECK_MAX_NODES, treated as a cycle).
local function reaches(tag, fid, from, target)
  local seen, queue, i = {[from] = true}, {from}, 1
  while i <= #queue do
    if i > facts.CYCLE_CHECK_MAX_NODES then return true end
    for _, edge in ipairs(redis.call('SMEMBERS', flow_key(tag, fid, 'out:' .. queue[i]))) do
      local down = redis.call('HGET', flow_key(tag, fid, 'edge:' .. edge), 'downstream_execution_id')
      if down == target then return true end
      if down and not seen[down] then
        seen[down] = true
        queue[#queue + 1] = down
      end
    end
    i = i + 1
  end
  return false
end

-- ff_stage_dependency_edge
--   KEYS[1] flow core
--   ARGV[1] flow_id
--   ARGV[2] edge_id
--   ARGV[3] upstream_execution_id
--   ARGV[4] downstream_execution_id
--   ARGV[5] dependency_kind
--   ARGV[6] data_passing_ref ("" = none)
--   ARGV[7] expected_graph_revision
--   Reply   OK(edge_id, new_graph_revision)
--   Errors  invalid_input, self_referencing_edge, flow_not_found, flow_already_terminal,
--           stale_graph_revision(current), execution_not_in_flow(eid), cycle_detected,
--           dependency_already_exists(edge_id)
redis.register_function('ff_stage_dependency_edge', function(keys, args)
  local fid, edge, up, down = args[1], args[2], args[3], args[4]
  local expected = arg_int(args[7])
  if not is_set(edge) or not is_set(up) or not is_set(down) or expected == nil then
    return err('invalid_input', 'edge_id, both ends and expected_graph_revision required')
  end
  if up == down then return err('self_referencing_edge', up) end
  local tag = tag_of(keys[1])
  local flow, bad = load_flow(keys[1], fid, true)
  if not flow then return bad end
  if to_int(flow.graph_revision, 0) ~= expected then
    return err('stale_graph_revision', flow.graph_revision or '0')
  end
  local members = flow_key(tag, fid, 'members')
  for _, eid in ipairs({up, down}) do
    if redis.call('SISMEMBER', members, eid) == 0 then return err('execution_not_in_flow', eid) end
  end
  local edge_key = flow_key(tag, fid, 'edge:' .. edge)
  if redis.call('EXISTS', edge_key) == 1 then return err('dependency_already_exists', edge) end
  for _, other in ipairs(redis.call('SMEMBERS', flow_key(tag, fid, 'out:' .. up))) do
    if redis.call('HGET', flow_key(tag, fid, 'edge:' .. other), 'downstream_execution_id') == down then
      return err('dependency_already_exists', other)
    end
  end
  if reaches(tag, fid, down, up) then return err('cycle_detected', up .. '->' .. down) end
  local now = now_ms()
  redis.call('HSET', edge_key, 'edge_id', edge, 'flow_id', fid, 'upstream_execution_id', up,
    'downstream_execution_id', down, 'dependency_kind', args[5] or 'success_only',
    'satisfaction_condition', 'all_required', 'data_passing_ref', args[6] or '',
    'edge_state', 'pending', 'created_at', fmt(now), 'created_by', 'engine')
  redis.call('SADD', flow_key(tag, fid, 'out:' .. up), edge)
  redis.call('SADD', flow_key(tag, fid, 'in:' .. down), edge)
  local revision = bump_revision(keys[1], 'edge_count', now)
  return ok(edge, fmt(revision))
end)

-- ff_set_edge_group_policy: how a child joins its incoming edges. Must precede the first
-- edge applied to it.
--   KEYS[1] flow core
--   ARGV[1] flow_id
--   ARGV[2] downstream_execution_id
--   ARGV[3] policy_variant (all_of | any_of | quorum)
--   ARGV[4] on_satisfied (let_run | cancel_remaining; "" = let_run)
--   ARGV[5] k (quorum only, >= 1)
--   Reply   OK('set', policy_variant, on_satisfied, k) |
--           ALREADY_SATISFIED('already_set', policy_variant, on_satisfied, k)
--   Errors  invalid_input, flow_not_found, flow_already_terminal, execution_not_in_flow,
--           edge_group_policy_already_fixed
redis.register_function('ff_set_edge_group_policy', function(keys, args)
  local fid, child, variant = args[1], args[2], args[3]
  local on_satisfied = is_set(args[4]) and args[4] or 'let_run'
  if not POLICIES[variant] then return err('invalid_input', 'unknown policy: ' .. tostring(variant)) end
  if not ON_SATISFIED[on_satisfied] then
    return err('invalid_input', 'on_satisfied must be let_run or cancel_remaining')
  end
  local k = 1
  if variant == 'quorum' then
    k = arg_int(args[5])
    if k == nil or k < 1 then return err('invalid_input', 'quorum k must be >= 1') end
  end
  local tag = tag_of(keys[1])
  local flow, bad = load_flow(keys[1], fid, true)
  if not flow then return bad end
  if redis.call('SISMEMBER', flow_key(tag, fid, 'members'), child) == 0 then
    return err('execution_not_in_flow', child)
  end
  local gkey = flow_key(tag, fid, 'edgegroup:' .. child)
  local group = hgetall(gkey)
  if group.policy_variant == variant and group.on_satisfied == on_satisfied
      and to_int(group.k, 1) == k then
    return already('already_set', variant, on_satisfied, fmt(k))
  end
  if to_int(group.n, 0) > 0 then return err('edge_group_policy_already_fixed', child) end
  redis.call('HSET', gkey, 'policy_variant', variant, 'on_satisfied', on_satisfied,
    'k', fmt(k), 'n', '0', 'succeeded', '0', 'failed', '0', 'skipped', '0',
    'group_state', 'pending', 'created_at', fmt(now_ms()))
  return ok('set', variant, on_satisfied, fmt(k))
end)

-- ff_apply_dependency_to_child: the child side of a staged edge. A waiting child is
-- blocked until its edges resolve; an upstream that has already ended resolves the
-- edge at once.
--   KEYS[1] child exec core
--   ARGV[1] flow_id
--   ARGV[2] child execution_id
--   ARGV[3] edge_id
--   ARGV[4] upstream_execution_id
--   ARGV[5] graph_revision
--   ARGV[6] release_hold ("1": lift the hold put by ff_add_execution_to_flow)
--   Reply   OK(unsatisfied_count, {downstream ids with sibling cancels owed},
--             {lanes of children made eligible}) |
--           ALREADY_SATISFIED(the same three fields)
--   Errors  invalid_input, execution_not_found, execution_not_in_flow,
--           execution_already_in_flow(other flow), flow_not_found, flow_already_terminal,
--           invalid_dependency (edge not staged, or staged between other executions)
redis.register_function('ff_apply_dependency_to_child', function(keys, args)
  local fid, eid, edge, up = args[1], args[2], args[3], args[4]
  if not is_set(fid) or not is_set(edge) or not is_set(up) then
    return err('invalid_input', 'flow_id, edge_id and upstream_execution_id required')
  end
  local tag = tag_of(keys[1])
  local ctx = load_exec(keys[1], eid)
  if not ctx then return err('execution_not_found', eid) end
  if ctx.core.flow_id ~= fid then
    if is_set(ctx.core.flow_id) then return err('execution_already_in_flow', ctx.core.flow_id) end
    return err('execution_not_in_flow', eid)
  end
  local flow, bad = load_flow(flow_key(tag, fid, 'core'), fid, true)
  if not flow then return bad end
  local staged = redis.call('HMGET', flow_key(tag, fid, 'edge:' .. edge),
    'upstream_execution_id', 'downstream_execution_id')
  if staged[1] ~= up or staged[2] ~= eid then
    return err('invalid_dependency', 'edge ' .. edge .. ' is not staged from ' .. up .. ' to ' .. eid)
  end
  local now = now_ms()
  local meta = ctx.k('deps:meta')
  local found = new_findings()
  local dkey = ctx.k('dep:' .. edge)
  local repeat_call = redis.call('EXISTS', dkey) == 1
  if not repeat_call then
    local ref = redis.call('HGET', flow_key(tag, fid, 'edge:' .. edge), 'data_passing_ref') or ''
    redis.call('HSET', dkey, 'edge_id', edge, 'flow_id', fid, 'upstream_execution_id', up,
      'downstream_execution_id', eid, 'dependency_kind',
      redis.call('HGET', flow_key(tag, fid, 'edge:' .. edge), 'dependency_kind') or 'success_only',
      'state', 'unsatisfied', 'data_passing_ref', ref, 'last_resolved_at', '')
    redis.call('SADD', ctx.k('deps:unresolved'), edge)
    redis.call('SADD', ctx.k('deps:all_edges'), edge)
    local count = redis.call('HINCRBY', meta, 'unsatisfied_required_count', 1)
    redis.call('HSET', meta, 'flow_id', fid, 'last_flow_graph_revision', args[5] or '',
      'last_dependency_update_at', fmt(now))
    local gkey = flow_key(tag, fid, 'edgegroup:' .. eid)
    if redis.call('EXISTS', gkey) == 0 then
      redis.call('HSET', gkey, 'policy_variant', 'all_of', 'on_satisfied', '', 'k', '1',
        'n', '0', 'succeeded', '0', 'failed', '0', 'skipped', '0', 'group_state', 'pending',
        'created_at', fmt(now))
    end
    redis.call('HINCRBY', gkey, 'n', 1)
    if ctx.core.lifecycle_phase == 'runnable' then
      block_child(ctx, fmt(count) .. ' dep(s) unresolved incl ' .. edge, now)
    end
  end
  if args[6] == '1' then redis.call('HDEL', meta, 'held') end
  if ctx.core.lifecycle_phase ~= 'terminal' then
    drain_queue(tag, fid, {edge}, now, found)
    ctx = load_exec(keys[1], eid)
    promote_if_ready(ctx, fid, now, found)
  end
  local unsatisfied = redis.call('HGET', meta, 'unsatisfied_required_count') or '0'
  local groups, lanes = findings_reply(found)
  if repeat_call then return already(unsatisfied, groups, lanes) end
  return ok(unsatisfied, groups, lanes)
end)

-- ff_resolve_completion: an upstream member ended; settle its outgoing edges (and the
-- skip cascade they cause). Idempotent: the completion listener and the reconciler may
-- both call it.
--   KEYS[1] upstream exec core
--   ARGV[1] flow_id
--   ARGV[2] upstream execution_id
--   Reply   OK(settled_edge_count, {downstream ids with sibling cancels owed},
--             {lanes of children made eligible}) |
--           OK('0', {}) when the upstream has not ended
redis.register_function('ff_resolve_completion', function(keys, args)
  local fid, up = args[1], args[2]
  local tag = tag_of(keys[1])
  if redis.call('HGET', keys[1], 'lifecycle_phase') ~= 'terminal' then return ok('0', {}) end
  local queue = redis.call('SMEMBERS', flow_key(tag, fid, 'out:' .. up))
  local found = new_findings()
  local settled = drain_queue(tag, fid, queue, now_ms(), found)
  local groups, lanes = findings_reply(found)
  return ok(fmt(settled), groups, lanes)
end)

-- ff_resolve_dependency: settle every unresolved edge of one child whose upstream has
-- ended (dependency_reconciler; idempotent).
--   KEYS[1] child exec core
--   ARGV[1] child execution_id
--   Reply   OK(settled_edge_count, {downstream ids with sibling cancels owed},
--             {lanes of children made eligible})
--   Errors  execution_not_found
redis.register_function('ff_resolve_dependency', function(keys, args)
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return err('execution_not_found', args[1]) end
  local fid = ctx.core.flow_id
  if not is_set(fid) then return ok('0', {}) end
  local now = now_ms()
  local found = new_findings()
  local settled = resolve_child(ctx, fid, now, found)
  ctx = load_exec(keys[1], args[1])
  if ctx.core.lifecycle_phase ~= 'terminal' then promote_if_ready(ctx, fid, now, found) end
  local groups, lanes = findings_reply(found)
  return ok(fmt(settled), groups, lanes)
end)

-- Replay of a skipped member (called by ff_replay_execution): every edge of the child
-- back to unsatisfied, its group counters back to zero, the child waiting for children;
-- then the edges whose upstream has ended are resolved again at once.
local function replay_skipped(ctx, now, fields)
  local fid = ctx.core.flow_id
  local edges = redis.call('SMEMBERS', ctx.k('deps:all_edges'))
  for _, edge in ipairs(edges) do
    redis.call('HSET', ctx.k('dep:' .. edge), 'state', 'unsatisfied', 'last_resolved_at', '')
    redis.call('SADD', ctx.k('deps:unresolved'), edge)
  end
  redis.call('HSET', ctx.k('deps:meta'), 'unsatisfied_required_count', fmt(#edges),
    'impossible_required_count', '0', 'last_dependency_update_at', fmt(now))
  local gkey = flow_key(ctx.tag, fid, 'edgegroup:' .. ctx.eid)
  redis.call('HSET', gkey, 'succeeded', '0', 'failed', '0', 'skipped', '0',
    'group_state', 'pending')
  redis.call('HDEL', gkey, 'cancel_siblings_pending_flag', 'cancel_siblings_pending_members',
    'cancel_siblings_reason', 'satisfied_at')
  write_state(ctx, {lifecycle_phase = 'runnable', ownership_state = 'unowned',
    eligibility_state = 'blocked_by_dependencies', blocking_reason = 'waiting_for_children',
    blocking_detail = 'replayed: ' .. fmt(#edges) .. ' dep(s) to resolve again',
    terminal_outcome = 'none', attempt_state = 'pending_replay_attempt'}, now, fields)
  redis.call('ZADD', lane_key(ctx.tag, ctx.lane, 'blocked:dependencies'),
    ctx.core.created_at or fmt(now), ctx.eid)
  local found = new_findings()
  resolve_child(ctx, fid, now, found)
  local after = load_exec(ctx.key, ctx.eid)
  if after.core.lifecycle_phase ~= 'terminal' then promote_if_ready(after, fid, now, found) end
  return after.core.public_state
end

-- ff_cancel_flow: flips the flow to cancelled and records, durably, which members are
-- owed a cancel (the server dispatches them; the cancel_reconciler finishes the job
-- after a crash).
--   KEYS[1] flow core
--   KEYS[2] ff:idx:{fp:N}:cancel_backlog
--   ARGV[1] flow_id
--   ARGV[2] reason
--   ARGV[3] cancellation_policy (cancel_all: every member that has not ended;
--           cancel_pending: those that have not started; flow_only: none)
--   ARGV[4] grace_ms (the backlog entry is due for the reconciler after it)
--   Reply   OK(policy, {member ids}, {member ids owed a cancel}) |
--           ALREADY_SATISFIED(stored policy, {member ids}, {member ids still owed})
--   Errors  invalid_input, invalid_grace_ms, flow_not_found
redis.register_function('ff_cancel_flow', function(keys, args)
  local fid, reason, policy = args[1], args[2] or '', args[3]
  if not CANCEL_POLICIES[policy] then
    return err('invalid_input', 'unknown cancellation_policy: ' .. tostring(policy))
  end
  local grace = arg_int(args[4])
  if grace == nil or grace < 0 or grace > 9007199254740991 then
    return err('invalid_grace_ms', tostring(args[4]))
  end
  local tag = tag_of(keys[1])
  local flow = hgetall(keys[1])
  if flow.flow_id == nil then return flow_not_found(fid) end
  local members = redis.call('SMEMBERS', flow_key(tag, fid, 'members'))
  local pending = flow_key(tag, fid, 'pending_cancels')
  if TERMINAL_FLOW[flow.public_flow_state] then
    return already(flow.cancellation_policy or policy, members, redis.call('SMEMBERS', pending))
  end
  local targets = {}
  if policy ~= 'flow_only' then
    for _, eid in ipairs(members) do
      local core = redis.call('HMGET', exec_key(tag, eid, 'core'), 'lifecycle_phase', 'started_at')
      local live = core[1] and core[1] ~= 'terminal'
      if live and (policy == 'cancel_all' or (core[1] == 'runnable' and not is_set(core[2]))) then
        targets[#targets + 1] = eid
      end
    end
  end
  local now = now_ms()
  redis.call('HSET', keys[1], 'public_flow_state', 'cancelled', 'cancelled_at', fmt(now),
    'cancel_reason', reason, 'cancellation_policy', policy, 'last_mutation_at', fmt(now))
  for i = 1, #targets, 1000 do
    redis.call('SADD', pending, unpack(targets, i, math.min(i + 999, #targets)))
  end
  if #targets > 0 then redis.call('ZADD', keys[2], fmt(now + grace), fid) end
  return ok(policy, members, targets)
end)

-- ff_ack_cancel_member: one member owed a cancel got it (or no longer needs it).
--   KEYS[1] flow pending_cancels
--   KEYS[2] ff:idx:{fp:N}:cancel_backlog
--   ARGV[1] execution_id
--   ARGV[2] flow_id
--   Reply   OK(remaining count)
--   Errors  invalid_input
redis.register_function('ff_ack_cancel_member', function(keys, args)
  local bad = required(args, 'execution_id', 'flow_id')
  if bad then return bad end
  redis.call('SREM', keys[1], args[1])
  local remaining = redis.call('SCARD', keys[1])
  if remaining == 0 then redis.call('ZREM', keys[2], args[2]) end
  return ok(fmt(remaining))
end)

-- ff_reconcile_sibling_cancel_group (edge_cancel_reconciler)
--   KEYS[1] ff:idx:{fp:N}:pending_cancel_groups
--   KEYS[2] edgegroup of the downstream
--   ARGV[1] flow_id
--   ARGV[2] downstream_execution_id
--   Reply   OK(action, detail): no_op/not_in_set, sremmed_stale/missing_edgegroup,
--           sremmed_stale/flag_cleared, no_op/siblings_running, completed_drain/""
--   Errors  invalid_args
redis.register_function('ff_reconcile_sibling_cancel_group', function(keys, args)
  if not is_set(args[1]) or not is_set(args[2]) then return err('invalid_args') end
  local tuple = args[1] .. '|' .. args[2]
  if redis.call('SISMEMBER', keys[1], tuple) == 0 then return ok('no_op', 'not_in_set') end
  if redis.call('EXISTS', keys[2]) == 0 then
    redis.call('SREM', keys[1], tuple)
    return ok('sremmed_stale', 'missing_edgegroup')
  end
  local group = redis.call('HMGET', keys[2], 'cancel_siblings_pending_flag',
    'cancel_siblings_pending_members')
  if group[1] ~= 'true' then
    redis.call('SREM', keys[1], tuple)
    return ok('sremmed_stale', 'flag_cleared')
  end
  local tag = tag_of(keys[1])
  for eid in string.gmatch(group[2] or '', '[^|]+') do
    local phase = redis.call('HGET', exec_key(tag, eid, 'core'), 'lifecycle_phase')
    if phase and phase ~= 'terminal' then return ok('no_op', 'siblings_running') end
  end
  redis.call('HDEL', keys[2], 'cancel_siblings_pending_flag', 'cancel_siblings_pending_members')
  redis.call('SREM', keys[1], tuple)
  return ok('completed_drain', '')
end)

-- ff_set_flow_tags
--   KEYS[1]    flow core
--   KEYS[2]    flow tags
--   ARGV[2i-1] tag key i (lowercase `<caller>.<field>`)
--   ARGV[2i]   tag value i
--   Reply      OK(pair_count)
--   Errors  invalid_input, invalid_tag_key(key), flow_not_found
redis.register_function('ff_set_flow_tags', function(keys, args)
  local bad = tags_problem(args)
  if bad then return bad end
  if redis.call('EXISTS', keys[1]) == 0 then return flow_not_found('') end
  redis.call('HSET', keys[2], unpack(args))
  redis.call('HSET', keys[1], 'last_mutation_at', fmt(now_ms()))
  return ok(fmt(#args / 2))
end)

flow.replay_skipped = replay_skipped
