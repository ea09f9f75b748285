--[[
  Deletes a session of the compact layout; it leaves its owner's index.

  KEYS[1]  the session hash
  ARGV[1]  expected version, or "" for none

  Returns {1} when a session was deleted, {0} when there was none (a torn
  one is deleted too, and counts as none), {-2, stored version} when the
  expected version differs (nothing changes).
]]
local key = KEYS[1]
local created_at, _, version, _, _, owner = live_session(key)
if not created_at then
  return {0}
end
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= version then
  return {-2, version}
end
redis.call('DEL', key)
reindex(index_of(owner), key)
return {1}
