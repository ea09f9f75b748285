--[[
  Extends an existing session of the compact layout:
  expires_at = min(now + ttl, created_at + lifetime). Never creates one: an
  absent key stays absent, a torn one is deleted. Its owner's index follows.

  KEYS[1]  the session hash
  ARGV[1]  now, Unix ms
  ARGV[2]  new idle ttl, seconds; 0 keeps the session's ttl
  ARGV[3]  absolute lifetime, ms
  ARGV[4]  "1" to return the whole session, "0" for the new expiry only

  Returns -1 when the session is absent, torn or past its lifetime; otherwise
  the new expires_at, or the session as HGETALL returns it.
]]
local key = KEYS[1]
local now = tonumber(ARGV[1])
local created_at, stored_ttl, version, size, _, owner, request_length = live_session(key)
if not created_at then
  return -1
end
local ttl = tonumber(ARGV[2])
if ttl == 0 then
  ttl = stored_ttl
end
local expires_at = expiry(now, ttl, created_at, tonumber(ARGV[3]))
local index = index_of(owner)
if expires_at <= now then
  redis.call('DEL', key)
  reindex(index, key)
  return -1
end
redis.call('HSET', key, 'm', meta_string(created_at, expires_at, version, ttl, size, request_length))
redis.call('PEXPIRE', key, expires_at - now)
reindex(index, key)
if ARGV[4] == '1' then
  return redis.call('HGETALL', key)
end
return expires_at
