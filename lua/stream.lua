-- Attempt output streams: appending frames (durable, summary, best_effort) under the
-- lease fence, the durable summary document (RFC 7396 JSON merge patch), and reads of
-- both. Tails are XREAD BLOCK, which a function may not run: ff/api/streams.py does them.
-- @requires util, facts, record, lease
--
-- Keys per attempt (ff/core/keys.py): the stream `ff:stream:<tag>:<eid>:<i>`, its meta
-- hash `...:meta` (closed_at / closed_reason are written by record.close_stream when the
-- attempt ends) and the summary hash `ff:attempt:<tag>:<eid>:<i>:summary`.

local fmt, ok, err, is_set, to_int = util.fmt, util.ok, util.err, util.is_set, util.to_int
local arg_int, bad_number, now_ms = util.arg_int, util.bad_number, util.now_ms
local load_exec, not_found, load_policy = record.load_exec, record.not_found, record.load_policy
local holder_check = lease.holder_check

local MODES = {durable = true, summary = true, best_effort = true}
-- cjson decodes `[]` and `{}` to the same empty table; an empty array is carried through a
-- merge as this string and written back as `[]`.
local EMPTY_ARRAY = '\0ff:empty_array'
local EMPTY_ARRAY_JSON = '"\\u0000ff:empty_array"'
local NULL_SENTINEL = '__ff_null__'

-- `text` with every empty array outside strings replaced by the EMPTY_ARRAY string.
local function mark_empty_arrays(text)
  local out, pos, n = {}, 1, #text
  while pos <= n do
    local at = string.find(text, '[%["]', pos)
    if not at then break end
    if string.sub(text, at, at) == '"' then
      local close = at + 1
      while true do
        close = string.find(text, '["\\]', close)
        if not close then return text end  -- unterminated: cjson reports it
        if string.sub(text, close, close) == '\\' then
          close = close + 2
        else
          break
        end
      end
      out[#out + 1] = string.sub(text, pos, close)
      pos = close + 1
    else
      local after = string.find(text, '[^ \t\r\n]', at + 1)
      if after and string.sub(text, after, after) == ']' then
        out[#out + 1] = string.sub(text, pos, at - 1) .. EMPTY_ARRAY_JSON
        pos = after + 1
      else
        out[#out + 1] = string.sub(text, pos, at)
        pos = at + 1
      end
    end
  end
  out[#out + 1] = string.sub(text, pos)
  return table.concat(out)
end

local function encode_document(doc)
  local text = cjson.encode(doc)
  -- cjson writes no whitespace, and a quote inside a string is always escaped, so a quote
  -- right after `[`, `,` or `:` opens a value: only the sentinel value itself matches.
  return (string.gsub(text, '([%[,:])' .. '"\\u0000ff:empty_array"', '%1[]'))
end

-- A decoded JSON object (not an array; an empty table is an object after marking).
local function is_object(v)
  return type(v) == 'table' and v[1] == nil
end

local function depth_of(v, limit)
  if type(v) ~= 'table' then return 0 end
  if limit <= 0 then return 1 end
  local deepest = 0
  for _, child in pairs(v) do
    local d = depth_of(child, limit - 1)
    if d > deepest then deepest = d end
  end
  return deepest + 1
end

-- RFC 7396 MergePatch(target, patch) for an object patch.
local function merge(target, patch)
  if not is_object(target) then target = {} end
  for k, v in pairs(patch) do
    if v == cjson.null then
      target[k] = nil
    elseif is_object(v) then
      target[k] = merge(target[k], v)
    else
      target[k] = v
    end
  end
  return target
end

-- String leaves equal to the null sentinel become JSON null (a way to store a null).
local function resolve_null_sentinels(v, depth)
  if type(v) ~= 'table' or depth > 32 then return end
  for k, child in pairs(v) do
    if child == NULL_SENTINEL then
      v[k] = cjson.null
    else
      resolve_null_sentinels(child, depth + 1)
    end
  end
end

-- The decoded patch of a summary frame, or nil and an error reply.
local function decode_patch(payload)
  local decoded, patch = pcall(cjson.decode, mark_empty_arrays(payload))
  if not decoded then return nil, err('invalid_input', 'patch payload is not valid JSON') end
  if not is_object(patch) then return nil, err('invalid_input', 'patch must be a JSON object') end
  if depth_of(patch, facts.SUMMARY_PATCH_MAX_DEPTH + 1) > facts.SUMMARY_PATCH_MAX_DEPTH then
    return nil, err('patch_depth_exceeded', fmt(facts.SUMMARY_PATCH_MAX_DEPTH))
  end
  return patch
end

-- The summary document after `patch`, encoded; nil and an error reply when too large.
local function merged_document(summary_key, patch)
  local stored = redis.call('HGET', summary_key, 'document')
  local doc = {}
  if is_set(stored) then doc = cjson.decode(mark_empty_arrays(stored)) end
  doc = merge(doc, patch)
  resolve_null_sentinels(doc, 1)
  local text = encode_document(doc)
  if #text > facts.SUMMARY_MAX_BYTES then
    return nil, err('summary_too_large', fmt(facts.SUMMARY_MAX_BYTES))
  end
  return text
end

-- Checked append arguments, or nil and an error reply.
local function append_params(args)
  local p = {
    idx = args[2], frame_type = args[6], payload = args[7] or '',
    encoding = is_set(args[8]) and args[8] or 'utf8', correlation_id = args[9] or '',
    source = is_set(args[10]) and args[10] or 'worker',
    mode = is_set(args[11]) and args[11] or 'durable', ttl = arg_int(args[12]),
  }
  local idx = arg_int(p.idx)
  if idx == nil or idx < 0 then return nil, bad_number('attempt_index', p.idx) end
  if #p.payload > facts.STREAM_FRAME_MAX_BYTES then
    return nil, err('retention_limit_exceeded', fmt(#p.payload),
      fmt(facts.STREAM_FRAME_MAX_BYTES))
  end
  if not is_set(p.frame_type) or #p.frame_type > facts.STREAM_FRAME_TYPE_MAX_BYTES then
    return nil, err('invalid_frame_type', 'frame_type must be 1..'
      .. facts.STREAM_FRAME_TYPE_MAX_BYTES .. ' bytes')
  end
  if #p.correlation_id > facts.STREAM_CORRELATION_ID_MAX_BYTES then
    return nil, err('invalid_input', 'correlation_id longer than '
      .. facts.STREAM_CORRELATION_ID_MAX_BYTES .. ' bytes')
  end
  if p.source == 'engine' then
    return nil, err('invalid_input', "source 'engine' is reserved for the stream_closed frame")
  end
  if not MODES[p.mode] then
    return nil, err('invalid_input', 'stream_mode must be durable, summary or best_effort')
  end
  if is_set(args[12]) and (p.ttl == nil or p.ttl < 0) then
    return nil, bad_number('ttl_ms', args[12])
  end
  if p.mode == 'best_effort' and (p.ttl == nil or p.ttl == 0) then
    p.ttl = facts.STREAM_BEST_EFFORT_TTL_DEFAULT_MS
  end
  if p.mode == 'summary' then
    local patch, bad = decode_patch(p.payload)
    if not patch then return nil, bad end
    p.patch = patch
  end
  return p
end

-- Creates the meta hash on the first append; returns it (as a table).
local function open_meta(ctx, meta_key, idx, now)
  local meta = util.hgetall(meta_key)
  if meta.stream_id ~= nil then return meta end
  redis.call('HSET', meta_key, 'stream_id', ctx.eid .. ':' .. idx, 'execution_id', ctx.eid,
    'attempt_id', ctx.core.current_attempt_id or '', 'attempt_index', idx,
    'created_at', fmt(now), 'closed_at', '', 'closed_reason', '',
    'durability_mode', 'durable_full', 'last_sequence', '', 'frame_count', '0',
    'total_bytes', '0', 'last_frame_at', '', 'has_durable_frame', '0')
  return {frame_count = '0', total_bytes = '0', has_durable_frame = '0'}
end

-- The retention a durable or summary frame trims to: the policy's, else the default.
local function durable_maxlen(ctx)
  local sp = load_policy(ctx).stream_policy
  local n = type(sp) == 'table' and to_int(sp.retention_maxlen, nil) or nil
  if n == nil or n <= 0 then return facts.STREAM_RETENTION_MAXLEN_DEFAULT end
  return math.min(n, facts.STREAM_RETENTION_MAXLEN_MAX)
end

-- best_effort: MAXLEN from an EMA of the append rate, sized to hold about two TTLs of
-- frames; writes the rate state to meta and returns the MAXLEN.
local function adaptive_maxlen(meta_key, meta, ttl, now)
  local floor, ceiling = facts.STREAM_BEST_EFFORT_MAXLEN_FLOOR,
    facts.STREAM_BEST_EFFORT_MAXLEN_CEILING
  local alpha = facts.STREAM_BEST_EFFORT_EMA_ALPHA_PERMILLE / 1000
  local ttl_s = math.max(ttl, 1) / 1000
  local rate = tonumber(meta.ema_rate_hz)
  local last = tonumber(meta.last_append_ts_ms)
  if rate == nil or last == nil then
    rate = floor / (ttl_s * 2)
  else
    local dt = math.max(now - last, 1)
    rate = alpha * (1000 / dt) + (1 - alpha) * rate
  end
  local k = math.max(floor, math.min(ceiling, math.ceil(rate * ttl_s * 2)))
  redis.call('HSET', meta_key, 'ema_rate_hz', string.format('%.6f', rate),
    'last_append_ts_ms', fmt(now), 'maxlen_applied_last', fmt(k))
  return k
end

-- ff_append_frame: one frame on the current attempt's stream, by the lease holder.
--   KEYS[1] exec core
--   KEYS[2] stream
--   KEYS[3] stream meta
--   KEYS[4] attempt summary
--   ARGV[1] execution_id
--   ARGV[2] attempt_index
--   ARGV[3] lease_id
--   ARGV[4] lease_epoch
--   ARGV[5] attempt_id
--   ARGV[6] frame_type (1..STREAM_FRAME_TYPE_MAX_BYTES bytes)
--   ARGV[7] payload (<= STREAM_FRAME_MAX_BYTES; in summary mode a JSON merge patch object)
--   ARGV[8] encoding ("" = utf8)
--   ARGV[9] correlation_id ("" = none)
--   ARGV[10] source ("" = worker; "engine" is reserved)
--   ARGV[11] stream_mode: durable ("") | summary | best_effort
--   ARGV[12] ttl_ms (best_effort; "" or 0 = STREAM_BEST_EFFORT_TTL_DEFAULT_MS)
--   Reply   OK(entry_id, frame_count, summary_version) -- summary_version "" unless summary
--   Errors  invalid_input, invalid_frame_type, retention_limit_exceeded(size, max),
--           patch_depth_exceeded(max), summary_too_large(max), execution_not_found,
--           fence_required, partial_fence_triple, execution_not_active(+4), lease_revoked,
--           lease_expired, stale_lease (also: attempt_index is not the current attempt),
--           stream_closed(closed_reason)
redis.register_function('ff_append_frame', function(keys, args)
  local p, bad = append_params(args)
  if not p then return bad end
  local ctx = load_exec(keys[1], args[1])
  if not ctx then return not_found(args[1]) end
  local now = now_ms()
  local fence = holder_check(ctx, args[3], args[4], args[5], '', now)
  if fence then return fence end
  if ctx.core.current_attempt_index ~= p.idx then
    return err('stale_lease', 'attempt ' .. p.idx .. ' is not the current attempt')
  end
  local meta_key = keys[3]
  local meta = open_meta(ctx, meta_key, p.idx, now)
  if is_set(meta.closed_at) then return err('stream_closed', meta.closed_reason or '') end
  local version = ''
  if p.mode == 'summary' then
    local document, too_large = merged_document(keys[4], p.patch)
    if not document then return too_large end
    version = fmt(redis.call('HINCRBY', keys[4], 'version', 1))
    redis.call('HSET', keys[4], 'document', document, 'patch_kind', 'json-merge-patch',
      'last_updated_ms', fmt(now))
    if version == '1' then redis.call('HSET', keys[4], 'first_applied_ms', fmt(now)) end
  end
  local fields = {'frame_type', p.frame_type, 'ts', fmt(now), 'payload', p.payload,
    'encoding', p.encoding, 'source', p.source, 'mode', p.mode}
  if is_set(p.correlation_id) then
    fields[#fields + 1] = 'correlation_id'
    fields[#fields + 1] = p.correlation_id
  end
  if p.mode == 'summary' then
    fields[#fields + 1] = 'summary_version'
    fields[#fields + 1] = version
  elseif p.mode == 'best_effort' then
    fields[#fields + 1] = 'ttl_ms'
    fields[#fields + 1] = fmt(p.ttl)
  end
  local id
  if p.mode == 'best_effort' then
    local k = adaptive_maxlen(meta_key, meta, p.ttl, now)
    id = redis.call('XADD', keys[2], 'MAXLEN', '~', fmt(k), '*', unpack(fields))
    if meta.has_durable_frame ~= '1' then
      redis.call('PEXPIRE', keys[2], fmt(2 * p.ttl))
    end
  else
    id = redis.call('XADD', keys[2], 'MAXLEN', fmt(durable_maxlen(ctx)), '*', unpack(fields))
    if meta.has_durable_frame ~= '1' then
      redis.call('PERSIST', keys[2])
      redis.call('HSET', meta_key, 'has_durable_frame', '1')
    end
  end
  local count = to_int(meta.frame_count, 0) + 1
  redis.call('HSET', meta_key, 'frame_count', fmt(count),
    'total_bytes', fmt(to_int(meta.total_bytes, 0) + #p.payload), 'last_sequence', id,
    'last_frame_at', fmt(now))
  return ok(id, fmt(count), version)
end)

-- Whether attempt `idx` exists: an error reply for an unknown execution or attempt.
local function attempt_problem(core_key, eid, idx_arg)
  local idx = arg_int(idx_arg)
  if idx == nil or idx < 0 then return bad_number('attempt_index', idx_arg) end
  local total = redis.call('HGET', core_key, 'total_attempt_count')
  if not total then return not_found(eid) end
  if idx >= to_int(total, 0) then return err('attempt_not_found', eid .. ':' .. idx) end
  return nil
end

-- ff_read_attempt_stream: XRANGE of one attempt's frames plus what says whether the
-- attempt's stream is closed (ff/api/streams.py turns these into closed_at/closed_reason).
--   KEYS[1] exec core
--   KEYS[2] stream
--   KEYS[3] stream meta
--   KEYS[4] attempt hash
--   ARGV[1] execution_id
--   ARGV[2] attempt_index
--   ARGV[3] from id (inclusive; "-" = start)
--   ARGV[4] to id (inclusive; "+" = end)
--   ARGV[5] count (1..STREAM_READ_HARD_CAP)
--   Reply   OK(closed_at, closed_reason, attempt_ended_at, attempt_state,
--           {{id, {field, value, ...}}, ...}) -- "" for what is unset
--   Errors  invalid_input, execution_not_found, attempt_not_found, invalid_cursor
redis.register_function{function_name = 'ff_read_attempt_stream', flags = {'no-writes'},
  callback = function(keys, args)
  local count = arg_int(args[5])
  if count == nil or count < 1 or count > facts.STREAM_READ_HARD_CAP then
    return err('invalid_input', 'count must be 1..' .. facts.STREAM_READ_HARD_CAP)
  end
  local problem = attempt_problem(keys[1], args[1], args[2])
  if problem then return problem end
  local read, entries = pcall(redis.call, 'XRANGE', keys[2], args[3], args[4], 'COUNT',
    fmt(count))
  if not read then return err('invalid_cursor', tostring(entries.err or entries)) end
  local closed = redis.call('HMGET', keys[3], 'closed_at', 'closed_reason')
  local attempt = redis.call('HMGET', keys[4], 'ended_at', 'attempt_state')
  return ok(closed[1] or '', closed[2] or '', attempt[1] or '', attempt[2] or '', entries)
end}

-- ff_read_summary: the attempt's summary document.
--   KEYS[1] exec core
--   KEYS[2] attempt summary
--   ARGV[1] execution_id
--   ARGV[2] attempt_index
--   Reply   OK(document, version, patch_kind, last_updated_ms, first_applied_ms) --
--           ("", "0", "", "0", "0") when no summary frame was appended
--   Errors  invalid_input, execution_not_found, attempt_not_found
redis.register_function{function_name = 'ff_read_summary', flags = {'no-writes'},
  callback = function(keys, args)
  local problem = attempt_problem(keys[1], args[1], args[2])
  if problem then return problem end
  local s = redis.call('HMGET', keys[2], 'document', 'version', 'patch_kind',
    'last_updated_ms', 'first_applied_ms')
  return ok(s[1] or '', s[2] or '0', s[3] or '', s[4] or '0', s[5] or '0')
end}
