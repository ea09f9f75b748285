--[[
  Deletes a session of the compact layout that a read found torn or past its
  expiry, unless a whole one has replaced it since; it leaves its owner's
  index. A whole session without a TTL gets the one its m field says.

  KEYS[1]  the session hash
  ARGV[1]  now, Unix ms

  Returns 1 when it deleted the hash, 0 otherwise.
]]
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  return 0
end
local expires_at = whole_expiry(key)
if expires_at and expires_at > tonumber(ARGV[1]) then
  if redis.call('PTTL', key) == -1 then
    redis.call('PEXPIRE', key, expires_at - redis_now)
  end
  return 0
end
local owner = redis.call('HGET', key, 'o')
redis.call('DEL', key)
reindex(index_of(owner), key)
return 1
