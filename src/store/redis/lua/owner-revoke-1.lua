--[[
  Deletes every session of an owner and its index in one atomic step.

  KEYS[1]  the owner's index
  ARGV[1]  the session stem of the owner's keys ("<prefix>S:{<tag>}")
  ARGV[2]  now, Unix ms

  Returns how many of the deleted sessions were live.
]]
local index, stem, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local revoked = 0
for _, handle in ipairs(prune(index, stem)) do
  local _, expires_at = parse_meta(redis.call('HGET', stem .. handle, 'm'))
  if expires_at and expires_at > now then
    revoked = revoked + 1
  end
  redis.call('DEL', stem .. handle)
end
redis.call('DEL', index)
return revoked
