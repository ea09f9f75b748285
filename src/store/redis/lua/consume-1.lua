--[[
  Reads and deletes a session in one atomic step: of two consumers racing for
  the same session, exactly one gets it.

  KEYS[1]  the session hash
  ARGV[1]  expected version, or "" for none

  Returns {0, the session as HGETALL returns it}: empty when absent; or
  {-2, stored version} when the expected version differs (nothing changes).
  The store reads a torn session (see session.lua) as absent; it is deleted
  either way.
]]
local session = redis.call('HGETALL', KEYS[1])
if #session == 0 then
  return {0, session}
end
local version = tonumber(redis.call('HGET', KEYS[1], 'version'))
if ARGV[1] ~= '' and version and tonumber(ARGV[1]) ~= version then
  return {-2, version}
end
redis.call('DEL', KEYS[1])
return {0, session}
