-- Budgets: spend limits per dimension (hard and soft), usage reports with dedup, the
-- per-execution spend ledger, resets. All keys of a call live on one {b:M} partition.
-- Key shapes: def ff:budget:{b:M}:<bid>, with :limits (hard:<dim>, soft:<dim>), :usage
-- (<dim> -> total), :by_exec:<eid> (ledger) and :by_exec:index; ff:idx:{b:M}:budget_resets,
-- ff:idx:{b:M}:budget_policies; ff:usagededup:{b:M}:<dedup_id>.
-- @requires util, facts

local fmt, ok, already, err = util.fmt, util.ok, util.already, util.err
local is_set, arg_int, tag_of, now_ms = util.is_set, util.arg_int, util.tag_of, util.now_ms
local required = util.required

-- An amount (limit or delta): an integer in 0..BUDGET_AMOUNT_MAX, else nil.
local function amount(v)
  if not is_set(v) or not string.match(v, '^%d+$') then return nil end
  local n = tonumber(v)
  if n > facts.BUDGET_AMOUNT_MAX then return nil end
  return n
end

-- Reads `count` dimension names from args[first..] and, after them, `lists` parallel lists
-- of amounts. Returns dims, {list1, list2, ...} or nil + error reply.
local function dims_and_amounts(args, count_at, lists)
  local count = arg_int(args[count_at])
  if count == nil or count < 1 or count > facts.BUDGET_DIMENSIONS_MAX then
    return nil, err('invalid_input', 'dimension count must be 1..' .. facts.BUDGET_DIMENSIONS_MAX)
  end
  if #args < count_at + count * (lists + 1) then
    return nil, err('invalid_input', 'dimension and amount lists differ in length')
  end
  local dims, seen, columns = {}, {}, {}
  for i = 1, count do
    local dim = args[count_at + i]
    if not is_set(dim) or string.find(dim, '[%z\1-\32\127]') then
      return nil, err('invalid_input', 'dimension names must be non-empty without whitespace')
    end
    if seen[dim] then return nil, err('invalid_input', 'duplicate dimension: ' .. dim) end
    seen[dim] = true
    dims[i] = dim
  end
  for l = 1, lists do
    columns[l] = {}
    for i = 1, count do
      local raw = args[count_at + l * count + i]
      local n = amount(raw)
      if n == nil then
        return nil, err('invalid_input', 'amounts must be integers in 0..'
          .. fmt(facts.BUDGET_AMOUNT_MAX) .. ', got: ' .. tostring(raw))
      end
      columns[l][i] = n
    end
  end
  return dims, columns
end

-- ff_create_budget
--   KEYS[1] ff:budget:{b:M}:<bid>
--   KEYS[2] ff:budget:{b:M}:<bid>:limits
--   KEYS[3] ff:idx:{b:M}:budget_resets
--   KEYS[4] ff:idx:{b:M}:budget_policies
--   ARGV[1] budget_id
--   ARGV[2] scope_type
--   ARGV[3] scope_id
--   ARGV[4] enforcement_mode
--   ARGV[5] on_hard_limit
--   ARGV[6] on_soft_limit
--   ARGV[7] reset_interval_ms (0: never reset)
--   ARGV[8] dimension count d (1..BUDGET_DIMENSIONS_MAX)
--   ARGV[9..8+d] dimensions; then d hard limits; then d soft limits (0 = unlimited)
--   Reply   OK(budget_id) | ALREADY_SATISFIED(budget_id)
--   Errors  invalid_input
redis.register_function('ff_create_budget', function(keys, args)
  local interval = arg_int(args[7])
  if interval == nil or interval < 0 or not string.match(args[7], '^%d+$') then
    return err('invalid_input', 'reset_interval_ms must be a non-negative integer')
  end
  local dims, columns = dims_and_amounts(args, 8, 2)
  if not dims then return columns end
  if not is_set(args[1]) then return err('invalid_input', 'budget_id is required') end
  redis.call('SADD', keys[4], args[1])
  if redis.call('EXISTS', keys[1]) == 1 then return already(args[1]) end
  local now = now_ms()
  local def = {'budget_id', args[1], 'scope_type', args[2] or '', 'scope_id', args[3] or '',
    'enforcement_mode', args[4] or '', 'on_hard_limit', args[5] or '',
    'on_soft_limit', args[6] or '', 'reset_interval_ms', fmt(interval), 'breach_count', '0',
    'soft_breach_count', '0', 'reset_count', '0', 'created_at', fmt(now),
    'last_updated_at', fmt(now), 'dimensions', table.concat(dims, ',')}
  if interval > 0 then
    def[#def + 1] = 'next_reset_at'
    def[#def + 1] = fmt(now + interval)
    redis.call('ZADD', keys[3], fmt(now + interval), args[1])
  end
  redis.call('HSET', keys[1], unpack(def))
  local limits = {}
  for i, dim in ipairs(dims) do
    limits[#limits + 1] = 'hard:' .. dim
    limits[#limits + 1] = fmt(columns[1][i])
    limits[#limits + 1] = 'soft:' .. dim
    limits[#limits + 1] = fmt(columns[2][i])
  end
  redis.call('HSET', keys[2], unpack(limits))
  return ok(args[1])
end)

-- ff_report_usage_and_check: add usage to a budget. Every dimension is checked against its
-- hard limit before anything is added: one breach applies nothing (zero overshoot). A
-- report within the hard limits is applied in full, and the first dimension then above its
-- soft limit is reported. With an execution id the deltas also go to its spend ledger.
--   KEYS[1] ff:budget:{b:M}:<bid>
--   KEYS[2] ff:budget:{b:M}:<bid>:limits
--   KEYS[3] ff:budget:{b:M}:<bid>:usage
--   ARGV[1] execution_id ("" = no ledger)
--   ARGV[2] dedup_id ("" = none; the key is ff:usagededup:{b:M}:<dedup_id>, kept 24 h)
--   ARGV[3] dimension count d
--   ARGV[4..3+d] dimensions; then d deltas (integers >= 0)
--   Reply   OK() | ALREADY_APPLIED() | SOFT_BREACH(dimension, current, soft_limit) |
--           HARD_BREACH(dimension, current, hard_limit) (nothing applied)
--   Errors  invalid_input, budget_not_found
redis.register_function('ff_report_usage_and_check', function(keys, args)
  local dims, columns = dims_and_amounts(args, 3, 1)
  if not dims then return columns end
  if redis.call('EXISTS', keys[1]) == 0 then return err('budget_not_found', keys[1]) end
  local tag = tag_of(keys[1])
  local dedup = is_set(args[2]) and ('ff:usagededup:' .. tag .. ':' .. args[2]) or nil
  if dedup and redis.call('EXISTS', dedup) == 1 then return {1, 'ALREADY_APPLIED'} end
  local deltas = columns[1]
  local now = fmt(now_ms())
  local hard = redis.call('HMGET', keys[2], unpack((function()
    local names = {}
    for i, dim in ipairs(dims) do names[i] = 'hard:' .. dim end
    return names
  end)()))
  local used = redis.call('HMGET', keys[3], unpack(dims))
  for i, dim in ipairs(dims) do
    local limit = tonumber(hard[i]) or 0
    local after = (tonumber(used[i]) or 0) + deltas[i]
    if limit > 0 and after > limit then
      redis.call('HINCRBY', keys[1], 'breach_count', 1)
      redis.call('HSET', keys[1], 'last_breach_at', now, 'last_breach_dim', dim,
        'last_updated_at', now)
      return {1, 'HARD_BREACH', dim, fmt(tonumber(used[i]) or 0), fmt(limit)}
    end
  end
  local ledger = is_set(args[1]) and (keys[1] .. ':by_exec:' .. args[1]) or nil
  local totals = {}
  for i, dim in ipairs(dims) do
    totals[i] = redis.call('HINCRBY', keys[3], dim, deltas[i])
    if ledger then redis.call('HINCRBY', ledger, dim, deltas[i]) end
  end
  if ledger then redis.call('SADD', keys[1] .. ':by_exec:index', args[1]) end
  if dedup then redis.call('SET', dedup, '1', 'PX', fmt(facts.BUDGET_DEDUP_TTL_MS)) end
  redis.call('HSET', keys[1], 'last_updated_at', now)
  for i, dim in ipairs(dims) do
    local soft = tonumber(redis.call('HGET', keys[2], 'soft:' .. dim)) or 0
    if soft > 0 and totals[i] > soft then
      redis.call('HINCRBY', keys[1], 'soft_breach_count', 1)
      return {1, 'SOFT_BREACH', dim, fmt(totals[i]), fmt(soft)}
    end
  end
  return ok()
end)

-- ff_release_budget: give back what one execution's ledger recorded (usage clamped at 0).
--   KEYS[1] ff:budget:{b:M}:<bid>
--   KEYS[2] ff:budget:{b:M}:<bid>:usage
--   ARGV[1] execution_id
--   Reply   OK('released') | OK('noop')
--   Errors  invalid_input
redis.register_function('ff_release_budget', function(keys, args)
  if not is_set(args[1]) then return err('invalid_input', 'execution_id is required') end
  local ledger = keys[1] .. ':by_exec:' .. args[1]
  local spent = redis.call('HGETALL', ledger)
  redis.call('SREM', keys[1] .. ':by_exec:index', args[1])
  if #spent == 0 then return ok('noop') end
  for i = 1, #spent, 2 do
    local left = (tonumber(redis.call('HGET', keys[2], spent[i])) or 0) - tonumber(spent[i + 1])
    redis.call('HSET', keys[2], spent[i], fmt(math.max(0, left)))
  end
  redis.call('DEL', ledger)
  return ok('released')
end)

-- ff_reset_budget: zero the usage and schedule the next reset (budget_reset scanner and
-- operators).
--   KEYS[1] ff:budget:{b:M}:<bid>
--   KEYS[2] ff:budget:{b:M}:<bid>:usage
--   KEYS[3] ff:idx:{b:M}:budget_resets
--   ARGV[1] budget_id
--   Reply   OK(next_reset_at, 0 when the budget has no interval)
--   Errors  invalid_input, budget_not_found
redis.register_function('ff_reset_budget', function(keys, args)
  local bad = required(args, 'budget_id')
  if bad then return bad end
  local interval = redis.call('HGET', keys[1], 'reset_interval_ms')
  if not interval then return err('budget_not_found', args[1] or '') end
  local now = now_ms()
  redis.call('DEL', keys[2])
  redis.call('HINCRBY', keys[1], 'reset_count', 1)
  redis.call('HSET', keys[1], 'last_reset_at', fmt(now), 'last_updated_at', fmt(now))
  redis.call('HDEL', keys[1], 'last_breach_at', 'last_breach_dim')
  local every = tonumber(interval) or 0
  if every <= 0 then
    redis.call('ZREM', keys[3], args[1])
    return ok('0')
  end
  local next_at = now + every
  redis.call('HSET', keys[1], 'next_reset_at', fmt(next_at))
  redis.call('ZADD', keys[3], fmt(next_at), args[1])
  return ok(fmt(next_at))
end)

-- The admission fields a new execution's core takes from its policy: budget_ids (CSV, in
-- policy order) and quota_policy_id. Returns a flat field list or nil + error reply.
local function attachment_fields(policy)
  local fields = {}
  local ids = policy.budget_ids
  if ids ~= nil and ids ~= cjson.null then
    if type(ids) ~= 'table' or #ids > facts.BUDGET_IDS_PER_EXECUTION_MAX then
      return nil, err('invalid_policy_json', 'budget_ids:not_a_list_of_ids')
    end
    for _, id in ipairs(ids) do
      if type(id) ~= 'string' or not is_set(id) or string.find(id, ',', 1, true) then
        return nil, err('invalid_policy_json', 'budget_ids:not_a_list_of_ids')
      end
    end
    if #ids > 0 then
      fields[#fields + 1] = 'budget_ids'
      fields[#fields + 1] = table.concat(ids, ',')
    end
  end
  local quota = policy.quota_policy_id
  if quota ~= nil and quota ~= cjson.null then
    if type(quota) ~= 'string' then return nil, err('invalid_policy_json', 'quota_policy_id') end
    if quota ~= '' then
      fields[#fields + 1] = 'quota_policy_id'
      fields[#fields + 1] = quota
    end
  end
  return fields
end

-- The union of two budget id CSVs, `first`'s ids first.
local function merge_ids(first, second)
  local seen, out = {}, {}
  for _, csv in ipairs({first or '', second or ''}) do
    for id in string.gmatch(csv, '[^,]+') do
      if not seen[id] then
        seen[id] = true
        out[#out + 1] = id
      end
    end
  end
  return table.concat(out, ',')
end

budget.attachment_fields, budget.merge_ids = attachment_fields, merge_ids
