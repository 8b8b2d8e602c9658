-- Library identity. Bump LIBRARY_VERSION whenever any function's KEYS, ARGV, reply or
-- behaviour changes: boot compares it with ff_version and reloads the library on mismatch.

local LIBRARY_VERSION = '2'

-- ff_version
--   KEYS none; ARGV none
--   Returns the bare version string
redis.register_function{function_name = 'ff_version', flags = {'no-writes'},
  callback = function() return LIBRARY_VERSION end}
