--[[
  Reads and deletes a session of the compact layout in one atomic step: of
  two consumers racing for the same session, exactly one gets it. It leaves
  its owner's index.

  KEYS[1]  the session hash
  ARGV[1]  expected version, or "" for none

  Returns {0, the session as HGETALL returns it}: empty when absent; or
  {-2, stored version} when the expected version differs (nothing changes).
  The store reads a torn session as absent; it is deleted either way.
]]
local key = KEYS[1]
local session = redis.call('HGETALL', key)
if #session == 0 then
  return {0, session}
end
local fields = redis.call('HMGET', key, 'm', 'o')
local _, _, version = parse_meta(fields[1])
if ARGV[1] ~= '' and version and tonumber(ARGV[1]) ~= version then
  return {-2, version}
end
redis.call('DEL', key)
reindex(index_of(fields[2]), key)
return {0, session}
