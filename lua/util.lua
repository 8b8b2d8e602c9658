-- Shared helpers of the flowfabric library: clock, envelopes, argument parsing, JSON,
-- capability lists and key names.
-- @requires facts
--
-- Conventions (docs/decisions.md, "Lua library layout")
--   * Each file is one area: the loader declares one table per area (`util`, `state`, ...)
--     and wraps the file in a do-block, so a file's helpers are private unless exported
--     at its end, and the chunk's top-level locals stay one per area.
--   * `-- @requires a, b` names the areas a file uses; the loader orders files by it and
--     refuses a file that uses an area it does not declare.
--   * Success replies are {1, status, ...}; business errors are {0, code, detail...}. The
--     fields after the status are positional and listed in the function's header; the
--     wrapper in ff/script/ decodes them into a Struct with the same field order.
--   * Hash fields are strings; "unset" is "". Numbers are written with fmt() so that
--     13-digit timestamps and 16-digit eligible scores never turn into exponent notation.
--   * Every key a function touches shares the hash tag of KEYS[1]; names derived here
--     must match ff/core/keys.py exactly.
--   * Validate everything before the first write: a rejected call changes nothing.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%.0f', n)
end

local function ok(...)
  return {1, 'OK', ...}
end

local function already(...)
  return {1, 'ALREADY_SATISFIED', ...}
end

local function err(code, ...)
  return {0, code, ...}
end

local function is_set(v)
  return v ~= nil and v ~= false and v ~= ''
end

local function to_int(v, default)
  local n = tonumber(v)
  if n == nil then return default end
  return math.floor(n)
end

-- A numeric ARGV or nil; the caller returns invalid_input when nil and required. NaN,
-- infinities and magnitudes of 1e18 or more are nil: no count, time or TTL is that big,
-- and Valkey refuses them as command arguments (a script error, not an envelope).
local function arg_int(v)
  if not is_set(v) then return nil end
  local n = tonumber(v)
  if n == nil or n ~= n or n >= 1e18 or n <= -1e18 then return nil end
  return math.floor(n)
end

-- nil when ARGV[1..#names] are all set, else the invalid_input reply naming the first
-- one that is missing or empty (a key name or index member built from it would fail).
local function required(args, ...)
  local names = {...}
  for i = 1, #names do
    if not is_set(args[i]) then return err('invalid_input', names[i] .. ' is required') end
  end
  return nil
end

local function bad_number(name, v)
  return err('invalid_input', name .. ' must be a number, got: ' .. tostring(v))
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function tag_of(key)
  return string.match(key, '(%b{})')
end

local function decode_json(raw)
  if not is_set(raw) then return nil end
  local okd, value = pcall(cjson.decode, raw)
  if okd and type(value) == 'table' then return value end
  return nil
end

local function split_csv(csv)
  local out = {}
  if not is_set(csv) then return out end
  for token in string.gmatch(csv, '[^,]+') do out[#out + 1] = token end
  return out
end

-- Capability CSV validation shared by create and grants: returns nil or a reason.
local function caps_problem(tokens)
  if #tokens > facts.CAPS_MAX_TOKENS then return 'too_many_tokens' end
  local bytes = 0
  for _, token in ipairs(tokens) do
    bytes = bytes + #token + 1
  end
  if bytes - 1 > facts.CAPS_MAX_BYTES then return 'too_many_bytes' end
  return nil
end

-- Sorted CSV of required tokens the worker lacks ('' when satisfied).
local function missing_caps(required_csv, worker_csv)
  local have = {}
  for _, token in ipairs(split_csv(worker_csv)) do have[token] = true end
  local missing = {}
  for _, token in ipairs(split_csv(required_csv)) do
    if not have[token] then missing[#missing + 1] = token end
  end
  table.sort(missing)
  return table.concat(missing, ',')
end

-- Tag pairs (k1, v1, k2, v2, ...) with keys `<caller>.<field>` in lowercase: nil, or the
-- error reply for the first problem.
local function tags_problem(flat)
  if #flat == 0 or #flat % 2 ~= 0 then return err('invalid_input', 'tags come in pairs') end
  for i = 1, #flat, 2 do
    if not string.match(flat[i], '^[a-z][a-z0-9_]*%.[^.]+') then
      return err('invalid_tag_key', flat[i])
    end
  end
  return nil
end

-- ---------------------------------------------------------------------------
-- Key names (mirrors ff/core/keys.py)

local function exec_key(tag, eid, suffix)
  return 'ff:exec:' .. tag .. ':' .. eid .. ':' .. suffix
end

local function attempt_key(tag, eid, idx)
  return 'ff:attempt:' .. tag .. ':' .. eid .. ':' .. idx
end

local function stream_key(tag, eid, idx)
  return 'ff:stream:' .. tag .. ':' .. eid .. ':' .. idx
end

local function idx_key(tag, name)
  return 'ff:idx:' .. tag .. ':' .. name
end

local function lane_key(tag, lane, name)
  return 'ff:idx:' .. tag .. ':lane:' .. lane .. ':' .. name
end

local function worker_leases_key(tag, wiid)
  return 'ff:idx:' .. tag .. ':worker:' .. wiid .. ':leases'
end

util.now_ms, util.fmt, util.ok, util.already, util.err = now_ms, fmt, ok, already, err
util.is_set, util.to_int, util.arg_int, util.bad_number = is_set, to_int, arg_int, bad_number
util.required = required
util.hgetall, util.tag_of, util.decode_json = hgetall, tag_of, decode_json
util.split_csv, util.caps_problem, util.missing_caps = split_csv, caps_problem, missing_caps
util.exec_key, util.attempt_key, util.stream_key = exec_key, attempt_key, stream_key
util.idx_key, util.lane_key, util.worker_leases_key = idx_key, lane_key, worker_leases_key
util.tags_problem = tags_problem
