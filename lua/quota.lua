-- Quotas: at most N admissions per sliding window and at most M admitted at once. All keys
-- of a call live on one {q:K} partition. Key shapes: def ff:quota:{q:K}:<qid>, with
-- :window:default (ZSET eid -> admission ms), :concurrency (counter, kept equal to the
-- size of :admitted_set), :admitted_set, :admitted:<eid> (guard, PX window);
-- ff:idx:{q:K}:quota_policies.
-- @requires util, facts

local fmt, ok, already, err = util.fmt, util.ok, util.already, util.err
local is_set, to_int, now_ms = util.is_set, util.to_int, util.now_ms

local function limit_arg(v, max)
  if not is_set(v) or not string.match(v, '^%d+$') then return nil end
  local n = tonumber(v)
  if n > max then return nil end
  return n
end

local function window_ms(def_window_seconds)
  local seconds = to_int(def_window_seconds, 0)
  if seconds <= 0 then seconds = facts.QUOTA_WINDOW_DEFAULT_S end
  return seconds * 1000
end

-- ff_create_quota_policy
--   KEYS[1] ff:quota:{q:K}:<qid>
--   KEYS[2] ff:quota:{q:K}:<qid>:concurrency
--   KEYS[3] ff:idx:{q:K}:quota_policies
--   ARGV[1] quota_policy_id
--   ARGV[2] window_seconds (0: QUOTA_WINDOW_DEFAULT_S)
--   ARGV[3] max_requests_per_window (0: unlimited)
--   ARGV[4] max_concurrent (0: unlimited)
--   Reply   OK(quota_policy_id) | ALREADY_SATISFIED(quota_policy_id)
--   Errors  invalid_input
redis.register_function('ff_create_quota_policy', function(keys, args)
  local window = limit_arg(args[2], facts.QUOTA_WINDOW_MAX_S)
  local rate = limit_arg(args[3], facts.QUOTA_LIMIT_MAX)
  local cap = limit_arg(args[4], facts.QUOTA_LIMIT_MAX)
  if window == nil or rate == nil or cap == nil then
    return err('invalid_input', 'window_seconds must be 0..' .. facts.QUOTA_WINDOW_MAX_S
      .. ' and the limits 0..' .. facts.QUOTA_LIMIT_MAX .. ' (integers)')
  end
  if not is_set(args[1]) then return err('invalid_input', 'quota_policy_id is required') end
  redis.call('SADD', keys[3], args[1])
  if redis.call('EXISTS', keys[1]) == 1 then return already(args[1]) end
  redis.call('HSET', keys[1], 'quota_policy_id', args[1],
    'requests_per_window_seconds', fmt(window), 'max_requests_per_window', fmt(rate),
    'active_concurrency_cap', fmt(cap), 'created_at', fmt(now_ms()))
  redis.call('SET', keys[2], '0')
  return ok(args[1])
end)

-- ff_check_admission_and_record: admit one execution, or say why not. An execution counts
-- once in the window (member = its id) and holds one concurrency slot until released.
--   KEYS[1] ff:quota:{q:K}:<qid>
--   KEYS[2] ff:quota:{q:K}:<qid>:window:default
--   KEYS[3] ff:quota:{q:K}:<qid>:concurrency
--   KEYS[4] ff:quota:{q:K}:<qid>:admitted:<eid>
--   KEYS[5] ff:quota:{q:K}:<qid>:admitted_set
--   ARGV[1] execution_id
--   Reply   ADMITTED() | ALREADY_ADMITTED() | RATE_EXCEEDED(retry_after_ms) |
--           CONCURRENCY_EXCEEDED(concurrency, cap)
--   Errors  invalid_input, quota_policy_not_found
redis.register_function('ff_check_admission_and_record', function(keys, args)
  if not is_set(args[1]) then return err('invalid_input', 'execution_id is required') end
  local def = redis.call('HMGET', keys[1], 'requests_per_window_seconds',
    'max_requests_per_window', 'active_concurrency_cap')
  if not def[1] then return err('quota_policy_not_found', keys[1]) end
  local eid = args[1]
  local holds = redis.call('SISMEMBER', keys[5], eid) == 1
  if holds and redis.call('EXISTS', keys[4]) == 1 then return {1, 'ALREADY_ADMITTED'} end
  local now = now_ms()
  local window = window_ms(def[1])
  local rate, cap = to_int(def[2], 0), to_int(def[3], 0)
  redis.call('ZREMRANGEBYSCORE', keys[2], '-inf', fmt(now - window))
  local counted = redis.call('ZSCORE', keys[2], eid)
  if rate > 0 and not counted and redis.call('ZCARD', keys[2]) >= rate then
    local oldest = redis.call('ZRANGE', keys[2], 0, 0, 'WITHSCORES')
    local wait = math.max(0, tonumber(oldest[2]) + window - now)
    return {1, 'RATE_EXCEEDED', fmt(wait + math.random(0, facts.QUOTA_RETRY_JITTER_MS))}
  end
  local current = to_int(redis.call('GET', keys[3]), 0)
  if cap > 0 and not holds and current >= cap then
    return {1, 'CONCURRENCY_EXCEEDED', fmt(current), fmt(cap)}
  end
  if not counted then redis.call('ZADD', keys[2], fmt(now), eid) end
  if not holds then
    redis.call('SADD', keys[5], eid)
    redis.call('SET', keys[3], fmt(current + 1))
  end
  redis.call('SET', keys[4], '1', 'PX', fmt(window))
  return {1, 'ADMITTED'}
end)

-- ff_release_admission: an admitted execution gave its slot back (ended, stopped running, or
-- its grant lapsed). Idempotent: only a member of the admitted set is counted down.
--   KEYS[1] ff:quota:{q:K}:<qid>:admitted:<eid>
--   KEYS[2] ff:quota:{q:K}:<qid>:admitted_set
--   KEYS[3] ff:quota:{q:K}:<qid>:concurrency
--   ARGV[1] execution_id
--   Reply   OK('released') | OK('noop')
--   Errors  invalid_input
redis.register_function('ff_release_admission', function(keys, args)
  if not is_set(args[1]) then return err('invalid_input', 'execution_id is required') end
  redis.call('DEL', keys[1])
  if redis.call('SREM', keys[2], args[1]) == 0 then return ok('noop') end
  local left = to_int(redis.call('GET', keys[3]), 0) - 1
  redis.call('SET', keys[3], fmt(math.max(0, left)))
  return ok('released')
end)

-- ff_reconcile_quota (quota_reconciler): trim the window and set the concurrency counter
-- to the size of the admitted set when they drifted.
--   KEYS[1] ff:quota:{q:K}:<qid>
--   KEYS[2] ff:quota:{q:K}:<qid>:window:default
--   KEYS[3] ff:quota:{q:K}:<qid>:concurrency
--   KEYS[4] ff:quota:{q:K}:<qid>:admitted_set
--   Reply   OK(counter_before, counter_after) | OK('gone') when the policy no longer exists
redis.register_function('ff_reconcile_quota', function(keys, args)
  local seconds = redis.call('HGET', keys[1], 'requests_per_window_seconds')
  if not seconds then return ok('gone') end
  redis.call('ZREMRANGEBYSCORE', keys[2], '-inf', fmt(now_ms() - window_ms(seconds)))
  local before = to_int(redis.call('GET', keys[3]), 0)
  local live = redis.call('SCARD', keys[4])
  if before ~= live then redis.call('SET', keys[3], fmt(live)) end
  return ok(fmt(before), fmt(live))
end)
