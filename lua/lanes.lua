-- Lane work hints: per lane, the partitions that may hold claimable work, so that a
-- claim asks a few partitions instead of all of them. Producers mark a partition
-- (ZINCRBY 1, from Python: the hint lives under the lane's home partition tag, the work
-- under another); the scheduler drops it here when the partition had nothing, unless it
-- was marked again since the scheduler read it. A hint lost between a write and its
-- mark is put back by the lane_hints scanner within one interval.
-- @requires util

local ok, err, arg_int = util.ok, util.err, util.arg_int

-- ff_drop_lane_hint (scheduler, after a partition answered "no work for the lane")
--   KEYS[1] ff:idx:{fp:H}:lane:<lane>:work_partitions (H: the lane's home partition)
--   ARGV[1] partition (0..65535)
--   ARGV[2] score: the hint's score when the caller read it
--   Reply   OK(dropped) with dropped "1" (removed) or "0" (marked again, or absent)
--   Errors  invalid_input
redis.register_function('ff_drop_lane_hint', function(keys, args)
  local partition, seen = arg_int(args[1]), tonumber(args[2])
  if partition == nil or partition < 0 or partition > 65535 or seen == nil then
    return err('invalid_input', 'partition must be 0..65535 and score a number')
  end
  local score = redis.call('ZSCORE', keys[1], args[1])
  if score and tonumber(score) == seen then
    redis.call('ZREM', keys[1], args[1])
    return ok('1')
  end
  return ok('0')
end)
