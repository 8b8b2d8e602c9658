-- Library identity. ff_version answers `<release>.<digest>`: the loader puts the digest
-- of all lua/ sources in place of the placeholder below, so any edit to the library
-- changes the version and boot reloads it. Bump LIBRARY_RELEASE when KEYS/ARGV or
-- replies change incompatibly.

local LIBRARY_RELEASE = '2'
local LIBRARY_VERSION = '@DIGEST@'

-- ff_version
--   KEYS none; ARGV none
--   Returns the bare version string
redis.register_function{function_name = 'ff_version', flags = {'no-writes'},
  callback = function() return LIBRARY_VERSION end}
