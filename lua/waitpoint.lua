-- Suspension, waitpoints and signals: suspend on a resume condition, pending waitpoints
-- (token minted before the suspend), signal delivery with HMAC-SHA1 tokens checked in
-- constant time before any state is read, resume, suspension timeouts, waitpoint close,
-- and the per-partition HMAC keystore (install, rotate with grace, list kids).
-- @requires util, facts, record, lease
--
-- Keys (all under the tag T of KEYS[1], names as ff/core/keys.py):
--   ff:wp:T:<wp_id>                 waitpoint hash (state pending -> active -> closed)
--   ff:wp:T:<wp_id>:signals         stream of signals accepted on it (incl. buffered)
--   ff:wp:T:<wp_id>:condition       condition hash (matchers or composite tree)
--   ff:signal:T:<sig_id>[:payload]  signal record and payload
--   ff:sigdedup:T:<wp_id>:<key>     signal idempotency guard (value = first signal id)
--   ff:sec:T:waitpoint_hmac         keystore: current_kid, secret:<kid>, expires_at:<kid>
--   ff:exec:T:E:suspension:current[:satisfied_set|:member_map]  the suspension episode
--
-- Resume conditions (resume_condition_json, validated in ff/core/conditions.py and again
-- here): either a single waitpoint's {required_signal_names, signal_match_mode (any | all
-- | count), minimum_signal_count}, or {composite: true, v: 1, tree: node} with nodes
-- {kind: Single, waitpoint_key, matcher?}, {kind: AllOf, members}, {kind: Count, n,
-- count_kind: DistinctWaitpoints | DistinctSignals | DistinctSources, matcher?,
-- waitpoints}, {kind: NeverBySignal}; matchers {kind: ByName, name} | {kind: Wildcard}.

local fmt, ok, already, err = util.fmt, util.ok, util.already, util.err
local is_set, to_int, arg_int, bad_number = util.is_set, util.to_int, util.arg_int, util.bad_number
local hgetall, tag_of, decode_json, now_ms = util.hgetall, util.tag_of, util.decode_json,
  util.now_ms
local attempt_key, idx_key, lane_key = util.attempt_key, util.idx_key, util.lane_key
local required = util.required
local load_exec, not_found = record.load_exec, record.not_found
local write_state, add_eligible, history = record.write_state, record.add_eligible, record.history
local requeue = record.requeue
local release_lease_indexes, close_stream = record.release_lease_indexes, record.close_stream
local end_attempt, finish, load_policy = record.end_attempt, record.finish, record.load_policy
local holder_check = lease.holder_check

local NO_TIMEOUT_SCORE = '9999999999999'
local SIGNAL_CAP_DEFAULT = 10000
local SIGNAL_MAXLEN_DEFAULT = 1000
local DEDUP_TTL_DEFAULT = 86400000
local MAX_TREE_DEPTH = 16
local MAX_GRACE_MS = 9007199254740991

local TIMEOUT_BEHAVIORS = {fail = true, cancel = true, expire = true, auto_resume = true,
  auto_resume_with_timeout_signal = true, escalate = true}
local REASON_BLOCKING = {
  waiting_for_signal = 'waiting_for_signal', waiting_for_approval = 'waiting_for_approval',
  waiting_for_callback = 'waiting_for_callback',
  waiting_for_tool_result = 'waiting_for_tool_result',
  waiting_for_operator_review = 'paused_by_operator', paused_by_policy = 'paused_by_policy',
  paused_by_budget = 'waiting_for_budget', step_boundary = 'waiting_for_signal',
  manual_pause = 'paused_by_operator',
}
local COUNT_KINDS = {DistinctWaitpoints = 'wp', DistinctSignals = 'sig', DistinctSources = 'src'}

-- ---------------------------------------------------------------------------
-- Key names

local function wp_key(tag, wp_id) return 'ff:wp:' .. tag .. ':' .. wp_id end
local function signal_key(tag, sid) return 'ff:signal:' .. tag .. ':' .. sid end
local function keystore_key(tag) return 'ff:sec:' .. tag .. ':waitpoint_hmac' end

-- ---------------------------------------------------------------------------
-- HMAC-SHA1 from redis.sha1hex (RFC 2104, block size 64)

local function hex_to_bin(hex)
  if hex == nil or #hex == 0 or #hex % 2 ~= 0 or string.find(hex, '[^0-9a-fA-F]') then
    return nil
  end
  return (string.gsub(hex, '..', function(h) return string.char(tonumber(h, 16)) end))
end

local function xor_pad(key, byte)
  local out = {}
  for i = 1, 64 do out[i] = string.char(bit.bxor(string.byte(key, i) or 0, byte)) end
  return table.concat(out)
end

local function hmac_sha1_hex(key, msg)
  if #key > 64 then key = hex_to_bin(redis.sha1hex(key)) end
  local inner = hex_to_bin(redis.sha1hex(xor_pad(key, 0x36) .. msg))
  return redis.sha1hex(xor_pad(key, 0x5c) .. inner)
end

-- Equal-length strings compared without an early exit.
local function same_digest(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i))) end
  return diff == 0
end

local function token_message(wp_id, key, created_at)
  return wp_id .. '|' .. key .. '|' .. created_at
end

-- A token under the partition's current kid, or nil + error code.
local function mint_token(tag, wp_id, key, created_at)
  local ks = keystore_key(tag)
  local kid = redis.call('HGET', ks, 'current_kid')
  if not kid then return nil, 'hmac_secret_not_initialized' end
  local secret = redis.call('HGET', ks, 'secret:' .. kid)
  if not secret then return nil, 'hmac_secret_not_initialized' end
  local raw = hex_to_bin(secret)
  if not raw then return nil, 'invalid_secret' end
  return kid .. ':' .. hmac_sha1_hex(raw, token_message(wp_id, key, created_at))
end

-- nil when `token` signs (wp_id, key, created_at), else an error code.
local function token_problem(tag, token, wp_id, key, created_at, now)
  if not is_set(token) then return 'missing_token' end
  local kid, digest = string.match(token, '^([^:]+):(.*)$')
  if kid == nil or #digest ~= 40 then return 'invalid_token' end
  local ks = keystore_key(tag)
  local current = redis.call('HGET', ks, 'current_kid')
  if not current then return 'hmac_secret_not_initialized' end
  local secret = redis.call('HGET', ks, 'secret:' .. kid)
  if not secret then return 'invalid_token' end
  if kid ~= current then
    local expires = tonumber(redis.call('HGET', ks, 'expires_at:' .. kid) or '')
    if expires == nil or expires <= 0 or expires < now then return 'token_expired' end
  end
  local raw = hex_to_bin(secret)
  if not raw then return 'invalid_secret' end
  local want = hmac_sha1_hex(raw, token_message(wp_id, key, created_at))
  if not same_digest(want, string.lower(digest)) then return 'invalid_token' end
  return nil
end

-- ---------------------------------------------------------------------------
-- Resume conditions

local function matcher_ok(m)
  if m == nil or m == cjson.null then return true end
  if type(m) ~= 'table' then return false end
  if m.kind == 'Wildcard' then return true end
  return m.kind == 'ByName' and type(m.name) == 'string' and m.name ~= ''
end

local function matcher_accepts(m, name)
  if m == nil or m == cjson.null or m.kind == 'Wildcard' then return true end
  return m.name == name
end

-- Validates a composite node; collects its waitpoint keys into `keys`. nil or a reason.
local function tree_problem(node, depth, keys)
  if depth > MAX_TREE_DEPTH then return 'too_deep' end
  if type(node) ~= 'table' then return 'node_not_object' end
  local kind = node.kind
  if kind == 'Single' then
    if type(node.waitpoint_key) ~= 'string' or node.waitpoint_key == '' then
      return 'single_without_waitpoint_key'
    end
    if not matcher_ok(node.matcher) then return 'bad_matcher' end
    keys[node.waitpoint_key] = true
  elseif kind == 'AllOf' then
    if type(node.members) ~= 'table' or #node.members == 0 then return 'empty_all_of' end
    for _, member in ipairs(node.members) do
      local problem = tree_problem(member, depth + 1, keys)
      if problem then return problem end
    end
  elseif kind == 'Count' then
    local n = tonumber(node.n)
    if n == nil or n < 1 or n ~= math.floor(n) then return 'count_n_not_positive' end
    if not COUNT_KINDS[node.count_kind] then return 'bad_count_kind' end
    if not matcher_ok(node.matcher) then return 'bad_matcher' end
    if type(node.waitpoints) ~= 'table' or #node.waitpoints == 0 then
      return 'count_without_waitpoints'
    end
    for _, k in ipairs(node.waitpoints) do
      if type(k) ~= 'string' or k == '' then return 'bad_waitpoint_key' end
      keys[k] = true
    end
  elseif kind ~= 'NeverBySignal' then
    return 'unknown_node_kind'
  end
  return nil
end

-- The decoded condition (composite or not) or nil + an error reply.
local function parse_condition(raw)
  local cond = decode_json(raw)
  if cond == nil or #cond > 0 then
    return nil, err('invalid_resume_condition', 'not a JSON object')
  end
  if cond.composite == true then
    if cond.v ~= 1 then return nil, err('invalid_resume_condition', 'unsupported version') end
    local keys = {}
    local problem = tree_problem(cond.tree, 1, keys)
    if problem then return nil, err('invalid_resume_condition', problem) end
    cond.keys = keys
    return cond
  end
  local names = cond.required_signal_names
  if names == nil or names == cjson.null then names = {} end
  if type(names) ~= 'table' then return nil, err('invalid_resume_condition', 'names') end
  for _, name in ipairs(names) do
    if type(name) ~= 'string' then return nil, err('invalid_resume_condition', 'names') end
  end
  local mode = cond.signal_match_mode
  if mode == nil or mode == cjson.null then mode = 'any' end
  if mode ~= 'any' and mode ~= 'all' and mode ~= 'count' then
    return nil, err('invalid_resume_condition', 'signal_match_mode')
  end
  local minimum = cond.minimum_signal_count
  if minimum == nil or minimum == cjson.null then minimum = 1 end
  minimum = tonumber(minimum)
  if minimum == nil or minimum < 1 or minimum ~= math.floor(minimum) or minimum > 1000 then
    return nil, err('invalid_resume_condition', 'minimum_signal_count')
  end
  cond.names, cond.mode, cond.minimum = names, mode, minimum
  return cond
end

-- Writes the condition hash of the primary waitpoint.
local function write_condition(tag, wp_id, cond, raw, now)
  local ck = wp_key(tag, wp_id) .. ':condition'
  redis.call('DEL', ck)
  if cond.composite == true then
    redis.call('HSET', ck, 'condition_type', 'composite', 'composite', '1',
      'match_mode', 'composite', 'tree_json', raw, 'total_matchers', '0',
      'satisfied_count', '0', 'closed', '0', 'updated_at', fmt(now))
    return
  end
  local names = cond.names
  local matchers = {}
  for _, name in ipairs(names) do matchers[#matchers + 1] = name end
  if #matchers == 0 then matchers[1] = '' end
  if cond.mode ~= 'all' then
    while #matchers < cond.minimum do matchers[#matchers + 1] = '' end
  end
  local fields = {'condition_type', 'signal_set', 'match_mode', cond.mode,
    'minimum_signal_count', fmt(cond.minimum), 'total_matchers', fmt(#matchers),
    'satisfied_count', '0', 'closed', '0', 'updated_at', fmt(now)}
  for i, name in ipairs(matchers) do
    local p = 'matcher:' .. (i - 1) .. ':'
    fields[#fields + 1] = p .. 'name'
    fields[#fields + 1] = name
    fields[#fields + 1] = p .. 'satisfied'
    fields[#fields + 1] = '0'
  end
  redis.call('HSET', ck, unpack(fields))
end

-- The names a composite waits for on one waitpoint key ('' = any), for listings.
local function names_for_key(node, key, out)
  if node.kind == 'Single' and node.waitpoint_key == key then
    out[#out + 1] = (type(node.matcher) == 'table' and node.matcher.name) or ''
  elseif node.kind == 'Count' then
    for _, k in ipairs(node.waitpoints) do
      if k == key then out[#out + 1] = (type(node.matcher) == 'table' and node.matcher.name) or '' end
    end
  elseif node.kind == 'AllOf' then
    for _, m in ipairs(node.members) do names_for_key(m, key, out) end
  end
end

-- A display-only condition hash for a waitpoint of a composite (extras and listings).
local function write_display_condition(tag, wp_id, tree, key, now)
  local names = {}
  names_for_key(tree, key, names)
  local ck = wp_key(tag, wp_id) .. ':condition'
  redis.call('DEL', ck)
  local fields = {'condition_type', 'composite_member', 'total_matchers', fmt(#names),
    'closed', '0', 'updated_at', fmt(now)}
  for i, name in ipairs(names) do
    fields[#fields + 1] = 'matcher:' .. (i - 1) .. ':name'
    fields[#fields + 1] = name
  end
  redis.call('HSET', ck, unpack(fields))
end

-- Applies one signal to a single-waitpoint condition: effect, satisfied.
local function apply_simple(ck, sig)
  local total = to_int(redis.call('HGET', ck, 'total_matchers'), 0)
  local hit = nil
  for i = 0, total - 1 do
    local p = 'matcher:' .. i .. ':'
    local got = redis.call('HMGET', ck, p .. 'name', p .. 'satisfied')
    if got[2] ~= '1' and (not is_set(got[1]) or got[1] == sig.name) then
      hit = p
      break
    end
  end
  if not hit then return 'no_op', false end
  redis.call('HSET', ck, hit .. 'satisfied', '1', hit .. 'signal_id', sig.id)
  local count = redis.call('HINCRBY', ck, 'satisfied_count', 1)
  local cfg = redis.call('HMGET', ck, 'match_mode', 'minimum_signal_count')
  local done
  if cfg[1] == 'all' then done = count >= total else done = count >= to_int(cfg[2], 1) end
  return done and 'resume_condition_satisfied' or 'appended_to_waitpoint', done
end

local function tree_satisfied(node, path, map)
  local kind = node.kind
  if kind == 'Single' then return redis.call('HEXISTS', map, 'leaf:' .. path) == 1 end
  if kind == 'Count' then return to_int(redis.call('HGET', map, 'count:' .. path), 0) >= node.n end
  if kind == 'AllOf' then
    for i, member in ipairs(node.members) do
      if not tree_satisfied(member, path .. '.members[' .. (i - 1) .. ']', map) then
        return false
      end
    end
    return true
  end
  return false
end

-- Per node that names `key`: whether its matcher accepts the signal. Adds the tokens the
-- signal earns to `tokens` as {node_path, token, count_node}.
local function collect_tokens(node, path, key, sig, found, tokens)
  local kind = node.kind
  if kind == 'Single' and node.waitpoint_key == key then
    found.candidate = true
    if matcher_accepts(node.matcher, sig.name) then
      tokens[#tokens + 1] = {path, 'leaf', false}
    end
  elseif kind == 'Count' then
    for _, k in ipairs(node.waitpoints) do
      if k == key then
        found.candidate = true
        if matcher_accepts(node.matcher, sig.name) then
          local ck = COUNT_KINDS[node.count_kind]
          local token = ck == 'wp' and ('wp:' .. key) or ck == 'sig' and ('sig:' .. sig.id)
            or ('src:' .. sig.source_type .. ':' .. sig.source_identity)
          tokens[#tokens + 1] = {path, token, true}
        end
        break
      end
    end
  elseif kind == 'AllOf' then
    for i, member in ipairs(node.members) do
      collect_tokens(member, path .. '.members[' .. (i - 1) .. ']', key, sig, found, tokens)
    end
  end
end

-- Applies one signal to a composite condition: effect, satisfied.
local function apply_composite(ctx, tree, key, sig)
  local found, tokens = {}, {}
  collect_tokens(tree, 'root', key, sig, found, tokens)
  if not found.candidate then return 'signal_ignored_not_in_condition', false end
  if #tokens == 0 then return 'signal_ignored_matcher_failed', false end
  local set = ctx.k('suspension:current:satisfied_set')
  local map = ctx.k('suspension:current:member_map')
  local fresh = false
  for _, t in ipairs(tokens) do
    if redis.call('SADD', set, t[1] .. '|' .. t[2]) == 1 then
      fresh = true
      if t[3] then
        redis.call('HINCRBY', map, 'count:' .. t[1], 1)
      else
        redis.call('HSET', map, 'leaf:' .. t[1], sig.id)
      end
    end
  end
  if not fresh then return 'appended_to_waitpoint_duplicate', false end
  redis.call('SADD', set .. ':signals', sig.id)
  if tree_satisfied(tree, 'root', map) then return 'resume_condition_satisfied', true end
  return 'appended_to_waitpoint', false
end

-- One signal against the open suspension whose primary waitpoint is `primary`.
-- Returns effect, satisfied; a contributing signal joins the suspension's satisfiers.
local function apply_signal(ctx, primary, key, sig)
  local ck = wp_key(ctx.tag, primary) .. ':condition'
  local effect, done
  if redis.call('HGET', ck, 'composite') == '1' then
    local tree = decode_json(redis.call('HGET', ck, 'tree_json')).tree
    effect, done = apply_composite(ctx, tree, key, sig)
  else
    effect, done = apply_simple(ck, sig)
  end
  if effect == 'appended_to_waitpoint' or effect == 'resume_condition_satisfied' then
    local susp = ctx.k('suspension:current')
    local list = redis.call('HGET', susp, 'all_satisfier_signals')
    redis.call('HSET', susp, 'all_satisfier_signals',
      is_set(list) and (list .. ',' .. sig.id) or sig.id, 'last_signal_at', fmt(sig.now))
  end
  return effect, done
end

-- ---------------------------------------------------------------------------
-- Suspension episode helpers

-- {primary, extra...} waitpoint ids of the suspension record `susp`.
local function suspension_waitpoints(susp)
  local ids = {}
  if is_set(susp.waitpoint_id) then ids[1] = susp.waitpoint_id end
  for _, extra in ipairs(decode_json(susp.additional_waitpoints_json) or {}) do
    ids[#ids + 1] = extra.waitpoint_id
  end
  return ids
end

local function close_waitpoints(ctx, susp, reason, now)
  for _, id in ipairs(suspension_waitpoints(susp)) do
    local w = wp_key(ctx.tag, id)
    if redis.call('EXISTS', w) == 1 then
      redis.call('HSET', w, 'state', 'closed', 'closed_at', fmt(now), 'close_reason', reason)
      redis.call('HSET', w .. ':condition', 'closed', '1', 'closed_at', fmt(now),
        'closed_reason', reason)
    end
  end
end

-- Ends the open suspension and makes the execution runnable on the same attempt; the
-- next claim resumes it (the worker gets the signals listed in resume_signal_ids).
local function resume_now(ctx, susp, now, reason, delay_ms, signal_ids)
  local satisfied = {'satisfied_at', fmt(now), 'closed_at', fmt(now), 'close_reason', reason}
  redis.call('HSET', ctx.k('suspension:current'), unpack(satisfied))
  close_waitpoints(ctx, susp, reason == 'resumed' and 'resumed' or reason, now)
  redis.call('ZREM', lane_key(ctx.tag, ctx.lane, 'suspended'), ctx.eid)
  redis.call('ZREM', idx_key(ctx.tag, 'suspension_timeout'), ctx.eid)
  local fields = {'resume_signal_ids', cjson.encode(signal_ids), 'current_waitpoint_id', ''}
  requeue(ctx, now + (delay_ms or 0), 'waiting_for_resume_delay', 'attempt_interrupted', now,
    fields)
  return ctx.core.public_state
end

local function satisfier_ids(ctx)
  local list = redis.call('HGET', ctx.k('suspension:current'), 'all_satisfier_signals')
  local ids = {}
  for sid in string.gmatch(list or '', '[^,]+') do ids[#ids + 1] = sid end
  return ids
end

-- The suspend reply from a stored suspension: used for a holder's repeated call.
local function suspend_reply(ctx, susp, state)
  local token = redis.call('HGET', wp_key(ctx.tag, susp.waitpoint_id), 'waitpoint_token') or ''
  local extras = {}
  for _, extra in ipairs(decode_json(susp.additional_waitpoints_json) or {}) do
    extras[#extras + 1] = extra.waitpoint_id
    extras[#extras + 1] = extra.waitpoint_key
    extras[#extras + 1] = redis.call('HGET', wp_key(ctx.tag, extra.waitpoint_id),
      'waitpoint_token') or ''
  end
  return {susp.suspension_id, susp.waitpoint_id, susp.waitpoint_key, token,
    susp.timeout_at or '', state, extras}
end

-- Replays the signals buffered on a pending waitpoint through the new condition.
local function replay_buffered(ctx, wp_id, key, now)
  local done = false
  for _, entry in ipairs(redis.call('XRANGE', wp_key(ctx.tag, wp_id) .. ':signals', '-', '+')) do
    local fields = entry[2]
    local sid = nil
    for i = 1, #fields, 2 do if fields[i] == 'signal_id' then sid = fields[i + 1] end end
    if sid and not done then
      local s = redis.call('HMGET', signal_key(ctx.tag, sid), 'signal_name', 'source_type',
        'source_identity')
      local effect
      effect, done = apply_signal(ctx, wp_id, key, {id = sid, name = s[1] or '',
        source_type = s[2] or '', source_identity = s[3] or '', now = now})
      redis.call('HSET', signal_key(ctx.tag, sid), 'observed_effect', effect)
    end
  end
  return done
end

-- ff_suspend_execution: the lease holder suspends its attempt on a resume condition.
--   KEYS[1]  exec core
--   ARGV[1]  execution_id
--   ARGV[2]  lease_id
--   ARGV[3]  lease_epoch
--   ARGV[4]  attempt_id
--   ARGV[5]  suspension_id (a repeat with the same id returns the stored outcome)
--   ARGV[6]  waitpoint_id (the pending waitpoint's id with use_pending)
--   ARGV[7]  waitpoint_key
--   ARGV[8]  reason_code (waiting_for_signal, waiting_for_approval, ...)
--   ARGV[9]  requested_by
--   ARGV[10] timeout_ms ("" = none; the deadline is server now + timeout_ms)
--   ARGV[11] timeout_behavior (fail | cancel | expire | auto_resume | escalate)
--   ARGV[12] resume_condition_json
--   ARGV[13] use_pending ("1" = activate the pending waitpoint ARGV[6])
--   ARGV[14] number of additional waitpoints n, then n pairs (waitpoint_id, waitpoint_key)
--   Reply    OK(suspension_id, waitpoint_id, waitpoint_key, waitpoint_token, timeout_at,
--            state, {extra_id, extra_key, extra_token, ...}); state `suspended`, or
--            `resumed` when signals buffered on the pending waitpoint already satisfy
--            the condition (the lease is released either way and the next claim resumes);
--            ALREADY_SATISFIED(same fields) when the holder repeats a call that landed
--   Errors   execution_not_found, invalid_input, invalid_resume_condition, fence_required,
--            partial_fence_triple, execution_not_active(+4), lease_revoked, lease_expired,
--            stale_lease, already_suspended, waitpoint_not_found, waitpoint_not_pending,
--            invalid_waitpoint_for_execution, pending_waitpoint_expired,
--            use_pending_with_extras_unsupported, hmac_secret_not_initialized,
--            invalid_secret
redis.register_function('ff_suspend_execution', function(keys, args)
  local eid, sid, wp_id, key = args[1], args[5], args[6], args[7]
  if not is_set(sid) or not is_set(wp_id) or not is_set(key) then
    return err('invalid_input', 'suspension_id, waitpoint_id and waitpoint_key are required')
  end
  local timeout = arg_int(args[10])
  if is_set(args[10]) and (timeout == nil or timeout <= 0) then
    return bad_number('timeout_ms', args[10])
  end
  local behavior = is_set(args[11]) and args[11] or 'fail'
  if not TIMEOUT_BEHAVIORS[behavior] then
    return err('invalid_input', 'unknown timeout_behavior: ' .. behavior)
  end
  local n_extra = arg_int(args[14]) or 0
  if n_extra < 0 or #args ~= 14 + 2 * n_extra then
    return err('invalid_input', 'additional waitpoints come in (id, key) pairs')
  end
  local extras, bound = {}, {[key] = true}
  for i = 1, n_extra do
    local id, k = args[13 + 2 * i], args[14 + 2 * i]
    if not is_set(id) or not is_set(k) then
      return err('additional_waitpoint_binding_malformed', tostring(i))
    end
    extras[i] = {waitpoint_id = id, waitpoint_key = k}
    bound[k] = true
  end
  local use_pending = args[13] == '1'
  if use_pending and n_extra > 0 then return err('use_pending_with_extras_unsupported') end
  local cond, bad_cond = parse_condition(args[12])
  if not cond then return bad_cond end
  if cond.composite == true then
    for k in pairs(cond.keys) do
      if not bound[k] then return err('invalid_resume_condition', 'unbound key: ' .. k) end
    end
    for k in pairs(bound) do
      if not cond.keys[k] then return err('invalid_resume_condition', 'unused key: ' .. k) end
    end
  elseif n_extra > 0 then
    return err('invalid_resume_condition', 'additional waitpoints need a composite condition')
  end

  local ctx = load_exec(keys[1], eid)
  if not ctx then return not_found(eid) end
  local core = ctx.core
  local susp = hgetall(ctx.k('suspension:current'))
  if susp.suspension_id == sid and core.current_lease_epoch == args[3]
      and core.current_attempt_id == args[4] then
    return {1, 'ALREADY_SATISFIED', unpack(suspend_reply(ctx, susp,
      core.lifecycle_phase == 'suspended' and 'suspended' or 'resumed'))}
  end
  local now = now_ms()
  local bad = holder_check(ctx, args[2], args[3], args[4], 'worker', now)
  if bad then return bad end
  if is_set(susp.suspension_id) and not is_set(susp.closed_at) then
    return err('already_suspended', susp.suspension_id)
  end
  local idx = core.current_attempt_index
  local tag = ctx.tag
  local token
  if use_pending then
    local w = hgetall(wp_key(tag, wp_id))
    if w.waitpoint_id == nil then return err('waitpoint_not_found', wp_id) end
    if w.execution_id ~= eid or w.attempt_index ~= idx then
      return err('invalid_waitpoint_for_execution', wp_id)
    end
    if w.state ~= 'pending' then return err('waitpoint_not_pending', w.state or '') end
    if to_int(w.expires_at, 0) < now then return err('pending_waitpoint_expired', wp_id) end
    if not is_set(w.waitpoint_token) then return err('waitpoint_not_token_bound', wp_id) end
    key = w.waitpoint_key
    token = w.waitpoint_token
  else
    if redis.call('EXISTS', wp_key(tag, wp_id)) == 1 then
      return err('waitpoint_already_exists', wp_id)
    end
    local problem
    token, problem = mint_token(tag, wp_id, key, fmt(now))
    if not token then return err(problem) end
  end
  for _, extra in ipairs(extras) do
    if redis.call('EXISTS', wp_key(tag, extra.waitpoint_id)) == 1 then
      return err('waitpoint_already_exists', extra.waitpoint_id)
    end
    extra.token = mint_token(tag, extra.waitpoint_id, extra.waitpoint_key, fmt(now))
  end

  -- Writes from here on.
  if susp.suspension_id then
    redis.call('DEL', ctx.k('suspension:current'), ctx.k('suspension:current:satisfied_set'),
      ctx.k('suspension:current:satisfied_set:signals'), ctx.k('suspension:current:member_map'))
  end
  local timeout_at = timeout and (now + timeout) or nil
  local w = wp_key(tag, wp_id)
  if use_pending then
    redis.call('HSET', w, 'state', 'active', 'activated_at', fmt(now), 'suspension_id', sid)
    redis.call('ZREM', idx_key(tag, 'pending_waitpoint_expiry'), wp_id)
  else
    redis.call('HSET', w, 'waitpoint_id', wp_id, 'execution_id', eid, 'attempt_index', idx,
      'suspension_id', sid, 'waitpoint_key', key, 'waitpoint_token', token, 'state', 'active',
      'created_at', fmt(now), 'activated_at', fmt(now), 'expires_at', '', 'signal_count', '0',
      'matched_signal_count', '0')
  end
  redis.call('SADD', ctx.k('waitpoints'), wp_id)
  write_condition(tag, wp_id, cond, args[12], now)
  local extras_json = {}
  for _, extra in ipairs(extras) do
    redis.call('HSET', wp_key(tag, extra.waitpoint_id), 'waitpoint_id', extra.waitpoint_id,
      'execution_id', eid, 'attempt_index', idx, 'suspension_id', sid,
      'waitpoint_key', extra.waitpoint_key, 'waitpoint_token', extra.token, 'state', 'active',
      'created_at', fmt(now), 'activated_at', fmt(now), 'expires_at', '', 'signal_count', '0',
      'matched_signal_count', '0')
    redis.call('SADD', ctx.k('waitpoints'), extra.waitpoint_id)
    write_display_condition(tag, extra.waitpoint_id, cond.tree, extra.waitpoint_key, now)
    extras_json[#extras_json + 1] = {waitpoint_id = extra.waitpoint_id,
      waitpoint_key = extra.waitpoint_key}
  end
  local reason = is_set(args[8]) and args[8] or 'waiting_for_signal'
  local record_fields = {'suspension_id', sid, 'execution_id', eid, 'attempt_index', idx,
    'waitpoint_id', wp_id, 'waitpoint_key', key,
    'additional_waitpoints_json', #extras_json > 0 and cjson.encode(extras_json) or '[]',
    'reason_code', reason, 'requested_by', args[9] or '', 'created_at', fmt(now),
    'timeout_at', timeout_at and fmt(timeout_at) or '', 'timeout_behavior', behavior,
    'resume_condition_json', args[12], 'all_satisfier_signals', ''}
  redis.call('HSET', ctx.k('suspension:current'), unpack(record_fields))
  redis.call('HSET', attempt_key(tag, eid, idx), 'attempt_state', 'suspended',
    'suspension_id', sid, 'suspended_at', fmt(now))
  history(ctx, 'released', 'suspend')
  release_lease_indexes(ctx)
  write_state(ctx, {lifecycle_phase = 'suspended', ownership_state = 'unowned',
    eligibility_state = 'not_applicable',
    blocking_reason = REASON_BLOCKING[reason] or 'waiting_for_signal',
    blocking_detail = 'suspended: waitpoint ' .. wp_id .. ' awaiting ' .. reason,
    attempt_state = 'attempt_interrupted'}, now, {
    'current_lease_id', '', 'current_worker_id', '', 'current_worker_instance_id', '',
    'lease_expires_at', '', 'lease_renewal_deadline', '', 'current_suspension_id', sid,
    'current_waitpoint_id', wp_id, 'resume_signal_ids', ''})
  redis.call('ZADD', lane_key(tag, ctx.lane, 'suspended'),
    timeout_at and fmt(timeout_at) or NO_TIMEOUT_SCORE, eid)
  if timeout_at then
    redis.call('ZADD', idx_key(tag, 'suspension_timeout'), fmt(timeout_at), eid)
  end
  local state = 'suspended'
  if use_pending and replay_buffered(ctx, wp_id, key, now) then
    susp = hgetall(ctx.k('suspension:current'))
    resume_now(ctx, susp, now, 'resumed', 0, satisfier_ids(ctx))
    state = 'resumed'
  end
  local extras_reply = {}
  for _, extra in ipairs(extras) do
    extras_reply[#extras_reply + 1] = extra.waitpoint_id
    extras_reply[#extras_reply + 1] = extra.waitpoint_key
    extras_reply[#extras_reply + 1] = extra.token
  end
  return ok(sid, wp_id, key, token, timeout_at and fmt(timeout_at) or '', state, extras_reply)
end)

-- ff_create_pending_waitpoint: the lease holder mints a waitpoint (and its token) before
-- suspending, so a callback can be registered first; signals to it are buffered.
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] lease_id
--   ARGV[3] lease_epoch
--   ARGV[4] attempt_id
--   ARGV[5] waitpoint_id
--   ARGV[6] waitpoint_key
--   ARGV[7] expires_in_ms (the pending waitpoint closes at server now + this)
--   Reply   OK(waitpoint_id, waitpoint_key, waitpoint_token, expires_at)
--   Errors  execution_not_found, invalid_input, the lease errors of ff_suspend_execution,
--           waitpoint_already_exists, hmac_secret_not_initialized, invalid_secret
redis.register_function('ff_create_pending_waitpoint', function(keys, args)
  local eid, wp_id, key = args[1], args[5], args[6]
  if not is_set(wp_id) or not is_set(key) then
    return err('invalid_input', 'waitpoint_id and waitpoint_key are required')
  end
  local ttl = arg_int(args[7])
  if ttl == nil or ttl <= 0 then return bad_number('expires_in_ms', args[7]) end
  local ctx = load_exec(keys[1], eid)
  if not ctx then return not_found(eid) end
  local now = now_ms()
  local bad = holder_check(ctx, args[2], args[3], args[4], 'worker', now)
  if bad then return bad end
  local w = wp_key(ctx.tag, wp_id)
  if redis.call('EXISTS', w) == 1 then return err('waitpoint_already_exists', wp_id) end
  local token, problem = mint_token(ctx.tag, wp_id, key, fmt(now))
  if not token then return err(problem) end
  local expires = now + ttl
  redis.call('HSET', w, 'waitpoint_id', wp_id, 'execution_id', eid,
    'attempt_index', ctx.core.current_attempt_index, 'suspension_id', '',
    'waitpoint_key', key, 'waitpoint_token', token, 'state', 'pending',
    'created_at', fmt(now), 'activated_at', '', 'expires_at', fmt(expires),
    'signal_count', '0', 'matched_signal_count', '0')
  redis.call('HSET', w .. ':condition', 'condition_type', 'pending', 'total_matchers', '0',
    'closed', '0', 'updated_at', fmt(now))
  redis.call('SADD', ctx.k('waitpoints'), wp_id)
  redis.call('ZADD', idx_key(ctx.tag, 'pending_waitpoint_expiry'), fmt(expires), wp_id)
  return ok(wp_id, key, token, fmt(expires))
end)

-- ff_deliver_signal: a signal for one waitpoint, authenticated by its token before any
-- state is read. An unknown execution or waitpoint answers like a bad token; a failed
-- check writes nothing.
--   KEYS[1]  exec core
--   ARGV[1]  execution_id
--   ARGV[2]  waitpoint_id
--   ARGV[3]  signal_id
--   ARGV[4]  signal_name
--   ARGV[5]  signal_category
--   ARGV[6]  source_type
--   ARGV[7]  source_identity
--   ARGV[8]  payload
--   ARGV[9]  payload_encoding
--   ARGV[10] idempotency_key ("" = none)
--   ARGV[11] correlation_id
--   ARGV[12] dedup_ttl_ms ("" = 24 h)
--   ARGV[13] resume_delay_ms ("" = 0)
--   ARGV[14] max_signals_per_execution ("" = the policy's, else 10000)
--   ARGV[15] signal_maxlen ("" = 1000)
--   ARGV[16] waitpoint_token
--   ARGV[17] created_at ("" = server now)
--   ARGV[18] target_scope ("" = waitpoint)
--   Reply    OK(signal_id, effect) with effect resume_condition_satisfied |
--            appended_to_waitpoint | no_op | signal_ignored_not_in_condition |
--            signal_ignored_matcher_failed | appended_to_waitpoint_duplicate |
--            buffered_for_pending_waitpoint; DUPLICATE(existing_signal_id) for a
--            repeated idempotency key or signal id
--   Errors   invalid_input, missing_token, invalid_token, token_expired,
--            hmac_secret_not_initialized, invalid_secret, target_not_signalable,
--            waitpoint_closed, signal_limit_exceeded
redis.register_function('ff_deliver_signal', function(keys, args)
  local eid, wp_id, sid, name = args[1], args[2], args[3], args[4]
  if not is_set(sid) or not is_set(name) or not is_set(wp_id) then
    return err('invalid_input', 'waitpoint_id, signal_id and signal_name are required')
  end
  local numbers = {}
  for i, label in pairs({[12] = 'dedup_ttl_ms', [13] = 'resume_delay_ms',
      [14] = 'max_signals_per_execution', [15] = 'signal_maxlen', [17] = 'created_at'}) do
    numbers[i] = arg_int(args[i])
    if is_set(args[i]) and (numbers[i] == nil or numbers[i] < 0) then
      return bad_number(label, args[i])
    end
  end
  local tag = tag_of(keys[1])
  local now = now_ms()
  -- Authenticate first: nothing below reveals state to a caller without a valid token.
  local w = wp_key(tag, wp_id)
  local wp = redis.call('HMGET', w, 'execution_id', 'waitpoint_key', 'created_at', 'state',
    'suspension_id', 'expires_at')
  if wp[1] ~= eid or not is_set(wp[3]) or redis.call('EXISTS', keys[1]) == 0 then
    return err(is_set(args[16]) and 'invalid_token' or 'missing_token')
  end
  local problem = token_problem(tag, args[16], wp_id, wp[2], wp[3], now)
  if problem then return err(problem) end

  local ctx = load_exec(keys[1], eid)
  local core = ctx.core
  if core.lifecycle_phase == 'terminal' then
    return err('target_not_signalable', 'terminal')
  end
  local pending = wp[4] == 'pending'
  if pending then
    if to_int(wp[6], 0) < now then return err('waitpoint_closed', 'pending_expired') end
  elseif wp[4] ~= 'active' then
    return err('waitpoint_closed', wp[4] or '')
  elseif core.lifecycle_phase ~= 'suspended' or core.current_suspension_id ~= wp[5] then
    return err('target_not_signalable', core.lifecycle_phase or '')
  elseif redis.call('HGET', w .. ':condition', 'closed') == '1' then
    return err('waitpoint_closed', 'condition_closed')
  end
  local cap = numbers[14]
  if cap == nil then
    cap = to_int(load_policy(ctx).max_signals_per_execution, SIGNAL_CAP_DEFAULT)
  end
  if redis.call('ZCARD', ctx.k('signals')) >= cap then
    return err('signal_limit_exceeded', fmt(cap))
  end
  local sk = signal_key(tag, sid)
  if redis.call('EXISTS', sk) == 1 then return {1, 'DUPLICATE', sid} end
  if is_set(args[10]) then
    local ttl = numbers[12] or DEDUP_TTL_DEFAULT
    if ttl > 0 then
      local guard = 'ff:sigdedup:' .. tag .. ':' .. wp_id .. ':' .. args[10]
      local first = redis.call('GET', guard)
      if first then return {1, 'DUPLICATE', first} end
      redis.call('SET', guard, sid, 'PX', fmt(ttl), 'NX')
    end
  end

  redis.call('HSET', sk, 'signal_id', sid, 'target_execution_id', eid,
    'target_waitpoint_id', wp_id, 'target_scope', is_set(args[18]) and args[18] or 'waitpoint',
    'signal_name', name, 'signal_category', args[5] or '', 'source_type', args[6] or '',
    'source_identity', args[7] or '', 'correlation_id', args[11] or '',
    'idempotency_key', args[10] or '', 'created_at', fmt(numbers[17] or now),
    'accepted_at', fmt(now), 'matched_waitpoint_id', wp_id,
    'payload_encoding', is_set(args[9]) and args[9] or 'json', 'observed_effect', '')
  if is_set(args[8]) then redis.call('SET', sk .. ':payload', args[8]) end
  redis.call('XADD', w .. ':signals', 'MAXLEN', '~', fmt(numbers[15] or SIGNAL_MAXLEN_DEFAULT),
    '*', 'signal_id', sid, 'signal_name', name)
  redis.call('ZADD', ctx.k('signals'), fmt(now), sid)
  redis.call('HINCRBY', w, 'signal_count', 1)
  redis.call('HSET', w, 'last_signal_at', fmt(now))

  local effect = 'buffered_for_pending_waitpoint'
  if not pending then
    local susp = hgetall(ctx.k('suspension:current'))
    local done
    effect, done = apply_signal(ctx, susp.waitpoint_id, wp[2], {id = sid, name = name,
      source_type = args[6] or '', source_identity = args[7] or '', now = now})
    if effect == 'appended_to_waitpoint' or done then
      redis.call('HINCRBY', w, 'matched_signal_count', 1)
    end
    if done then
      redis.call('HSET', ctx.k('suspension:current'), 'closer_signal_id', sid)
      redis.call('HSET', wp_key(tag, susp.waitpoint_id) .. ':condition', 'closed', '1',
        'closed_at', fmt(now), 'closed_reason', 'satisfied')
      resume_now(ctx, susp, now, 'resumed', numbers[13] or 0, satisfier_ids(ctx))
    end
  end
  redis.call('HSET', sk, 'observed_effect', effect)
  return ok(sid, effect)
end)

-- ff_resume_execution (operator): resume a suspended execution without its condition.
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   ARGV[2] resume_delay_ms ("" = 0)
--   Reply   OK(public_state)
--   Errors  execution_not_found, execution_not_suspended
redis.register_function('ff_resume_execution', function(keys, args)
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local susp = hgetall(ctx.k('suspension:current'))
  if ctx.core.lifecycle_phase ~= 'suspended' or not is_set(susp.suspension_id)
      or is_set(susp.closed_at) then
    return err('execution_not_suspended', ctx.core.lifecycle_phase or '')
  end
  return ok(resume_now(ctx, susp, now_ms(), 'resumed', arg_int(args[2]) or 0,
    satisfier_ids(ctx)))
end)

-- ff_expire_suspension (suspension_timeout scanner; idempotent): applies the timeout
-- behaviour of a suspension whose deadline has passed.
--   KEYS[1] exec core
--   ARGV[1] execution_id
--   Reply   OK(outcome[, public_state]): outcome fail | cancel | expire | auto_resume |
--           escalate (with the new public state), or not_found_cleaned |
--           not_suspended_cleaned | no_active_suspension_cleaned | not_yet_due
--   Errors   invalid_input
redis.register_function('ff_expire_suspension', function(keys, args)
  local bad = required(args, 'execution_id')
  if bad then return bad end
  local tag = tag_of(keys[1])
  local eid = args[1]
  local ctx = load_exec(keys[1], eid)
  if not ctx then
    redis.call('ZREM', idx_key(tag, 'suspension_timeout'), eid)
    return ok('not_found_cleaned')
  end
  local core = ctx.core
  if core.lifecycle_phase ~= 'suspended' then
    redis.call('ZREM', idx_key(tag, 'suspension_timeout'), eid)
    return ok('not_suspended_cleaned')
  end
  local susp = hgetall(ctx.k('suspension:current'))
  if not is_set(susp.suspension_id) or is_set(susp.closed_at) then
    redis.call('ZREM', idx_key(tag, 'suspension_timeout'), eid)
    return ok('no_active_suspension_cleaned')
  end
  local now = now_ms()
  local due = to_int(susp.timeout_at, 0)
  if due == 0 or due > now then return ok('not_yet_due') end
  local behavior = susp.timeout_behavior or 'fail'
  if behavior == 'auto_resume' or behavior == 'auto_resume_with_timeout_signal' then
    -- The worker sees one signal named __timeout__ (source_type timeout).
    local sid = 'timeout-' .. susp.suspension_id
    redis.call('HSET', signal_key(tag, sid), 'signal_id', sid, 'target_execution_id', eid,
      'target_waitpoint_id', susp.waitpoint_id or '', 'signal_name', '__timeout__',
      'signal_category', 'timeout', 'source_type', 'timeout', 'source_identity', 'ff',
      'created_at', fmt(now), 'accepted_at', fmt(now), 'payload_encoding', 'json',
      'observed_effect', 'resume_condition_satisfied')
    redis.call('ZADD', ctx.k('signals'), fmt(now), sid)
    local ids = satisfier_ids(ctx)
    ids[#ids + 1] = sid
    return ok('auto_resume', resume_now(ctx, susp, now, 'timed_out_auto_resume', 0, ids))
  end
  if behavior == 'escalate' then
    redis.call('HSET', ctx.k('suspension:current'), 'reason_code',
      'waiting_for_operator_review', 'timeout_at', '')
    redis.call('ZREM', idx_key(tag, 'suspension_timeout'), eid)
    redis.call('ZADD', lane_key(tag, ctx.lane, 'suspended'), NO_TIMEOUT_SCORE, eid)
    local pub = write_state(ctx, {blocking_reason = 'paused_by_operator',
      blocking_detail = 'suspension timed out: escalated for operator review'}, now, nil)
    return ok('escalate', pub)
  end
  local outcome = ({cancel = 'cancelled', expire = 'expired'})[behavior] or 'failed'
  local reason = 'suspension_timeout:' .. behavior
  end_attempt(ctx, behavior == 'cancel' and 'ended_cancelled' or 'ended_failure', now,
    {'failure_reason', reason})
  close_stream(ctx, core.current_attempt_index, 'suspension_timeout', now)
  redis.call('HSET', ctx.k('suspension:current'), 'closed_at', fmt(now), 'close_reason',
    'timed_out_' .. behavior)
  close_waitpoints(ctx, susp, 'timed_out_' .. behavior, now)
  local extra = {'failure_reason', reason, 'current_suspension_id', '',
    'current_waitpoint_id', ''}
  if behavior == 'cancel' then
    extra[#extra + 1] = 'cancellation_reason'
    extra[#extra + 1] = reason
    extra[#extra + 1] = 'cancelled_by'
    extra[#extra + 1] = 'suspension_timeout'
  end
  finish(ctx, outcome, now, extra)
  return ok(behavior, ctx.core.public_state)
end)

-- ff_close_waitpoint (pending_wp_expiry scanner, or a proactive close)
--   KEYS[1] waitpoint hash
--   ARGV[1] waitpoint_id
--   ARGV[2] reason ("" = proactive_close; the scanner uses never_committed)
--   ARGV[3] only_if_due ("1": close a pending waitpoint only once its expires_at passed)
--   Reply   OK(outcome): closed | already_closed | not_found_cleaned | not_yet_due
--   Errors  waitpoint_not_open (an active waitpoint belongs to its suspension)
redis.register_function('ff_close_waitpoint', function(keys, args)
  local tag = tag_of(keys[1])
  local wp_id = args[1]
  local w = hgetall(keys[1])
  if w.waitpoint_id == nil then
    redis.call('ZREM', idx_key(tag, 'pending_waitpoint_expiry'), wp_id)
    return ok('not_found_cleaned')
  end
  if w.state == 'closed' or w.state == 'expired' then
    redis.call('ZREM', idx_key(tag, 'pending_waitpoint_expiry'), wp_id)
    return ok('already_closed')
  end
  if w.state ~= 'pending' then return err('waitpoint_not_open', w.state or '') end
  local now = now_ms()
  if args[3] == '1' and to_int(w.expires_at, 0) > now then return ok('not_yet_due') end
  local reason = is_set(args[2]) and args[2] or 'proactive_close'
  redis.call('HSET', keys[1], 'state', 'closed', 'closed_at', fmt(now), 'close_reason', reason)
  redis.call('HSET', keys[1] .. ':condition', 'closed', '1', 'closed_at', fmt(now),
    'closed_reason', reason)
  redis.call('ZREM', idx_key(tag, 'pending_waitpoint_expiry'), wp_id)
  return ok('closed')
end)

-- ---------------------------------------------------------------------------
-- Keystore

-- ff_install_waitpoint_hmac_secret (boot): install kid k1 when the keystore is empty,
-- repair a current kid whose secret is missing; never overwrite a stored secret.
--   KEYS[1] keystore ff:sec:{fp:N}:waitpoint_hmac
--   ARGV[1] secret_hex
--   Reply   OK(outcome): installed | repaired | present | mismatch
--   Errors  invalid_secret_hex
redis.register_function('ff_install_waitpoint_hmac_secret', function(keys, args)
  local secret = args[1]
  if not hex_to_bin(secret) then return err('invalid_secret_hex') end
  local kid = redis.call('HGET', keys[1], 'current_kid')
  if not kid then
    redis.call('HSET', keys[1], 'current_kid', 'k1', 'secret:k1', secret)
    return ok('installed')
  end
  local stored = redis.call('HGET', keys[1], 'secret:' .. kid)
  if not stored then
    redis.call('HSET', keys[1], 'secret:' .. kid, secret)
    return ok('repaired')
  end
  return ok(stored == secret and 'present' or 'mismatch')
end)

-- ff_rotate_waitpoint_hmac_secret: one partition's keystore to a new kid; the old kid
-- keeps validating until now + grace_ms.
--   KEYS[1] keystore ff:sec:{fp:N}:waitpoint_hmac
--   ARGV[1] new_kid
--   ARGV[2] new_secret_hex
--   ARGV[3] grace_ms
--   Reply   OK('rotated', previous_kid, new_kid, gc_count) | OK('noop', kid)
--   Errors  invalid_kid, invalid_secret_hex, invalid_grace_ms, rotation_conflict(kid)
redis.register_function('ff_rotate_waitpoint_hmac_secret', function(keys, args)
  local kid, secret = args[1], args[2]
  if not is_set(kid) or string.find(kid, ':', 1, true) then return err('invalid_kid') end
  if not hex_to_bin(secret) then return err('invalid_secret_hex') end
  local grace = tonumber(args[3])
  if grace == nil or grace ~= math.floor(grace) or grace < 0 or grace > MAX_GRACE_MS then
    return err('invalid_grace_ms')
  end
  local ks = keys[1]
  local current = redis.call('HGET', ks, 'current_kid')
  if current == kid then
    local stored = redis.call('HGET', ks, 'secret:' .. kid)
    if not stored then
      redis.call('HSET', ks, 'secret:' .. kid, secret)
      return ok('noop', kid)
    end
    if stored ~= secret then return err('rotation_conflict', kid) end
    return ok('noop', kid)
  end
  local now = now_ms()
  local gc = 0
  local fields = redis.call('HKEYS', ks)
  for _, field in ipairs(fields) do
    local old = string.match(field, '^secret:(.+)$')
    if old and old ~= current and old ~= kid then
      local expires = tonumber(redis.call('HGET', ks, 'expires_at:' .. old) or '')
      if expires == nil or expires <= 0 or expires < now then
        redis.call('HDEL', ks, 'secret:' .. old, 'expires_at:' .. old)
        gc = gc + 1
      end
    end
  end
  if current then
    local until_ms = fmt(now + grace)
    redis.call('HSET', ks, 'expires_at:' .. current, until_ms, 'previous_kid', current,
      'previous_expires_at', until_ms)
  end
  redis.call('HDEL', ks, 'expires_at:' .. kid)
  redis.call('HSET', ks, 'current_kid', kid, 'secret:' .. kid, secret)
  return ok('rotated', current or '', kid, fmt(gc))
end)

-- ff_list_waitpoint_hmac_kids
--   KEYS[1] keystore ff:sec:{fp:N}:waitpoint_hmac
--   Reply   OK(current_kid or "", n, kid1, expires_at1, ...): the demoted kids that still
--           validate (expires_at >= now)
redis.register_function('ff_list_waitpoint_hmac_kids', function(keys, args)
  local current = redis.call('HGET', keys[1], 'current_kid') or ''
  local now = now_ms()
  local out = {}
  for _, field in ipairs(redis.call('HKEYS', keys[1])) do
    local kid = string.match(field, '^expires_at:(.+)$')
    if kid and kid ~= current then
      local expires = tonumber(redis.call('HGET', keys[1], field) or '')
      if expires and expires >= now then
        out[#out + 1] = kid
        out[#out + 1] = fmt(expires)
      end
    end
  end
  return ok(current, fmt(#out / 2), unpack(out))
end)

waitpoint.hmac_sha1_hex, waitpoint.hex_to_bin = hmac_sha1_hex, hex_to_bin
