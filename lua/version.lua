-- Library identity. ff_version answers `<release>.<digest>`: the loader puts the digest
-- of all lua/ sources in place of the placeholder below, so any edit to the library
-- changes the version and boot reloads it. Bump LIBRARY_RELEASE when KEYS/ARGV or
-- replies change incompatibly.
-- @requires

local LIBRARY_RELEASE = '3'
local LIBRARY_VERSION = '@DIGEST@'

-- ff_version
--   (no KEYS, no ARGV)
--   Reply   the bare version string (no envelope)
redis.register_function{function_name = 'ff_version', flags = {'no-writes'},
  callback = function() return LIBRARY_VERSION end}
