--[[
  Moves a session to a new key in one atomic step (RotateSessionKey): the
  hash and its expiry go to KEYS[2] and KEYS[1] is gone. RENAMENX keeps the
  TTL and refuses to overwrite. On Cluster both keys lie in one slot (the
  store picks the new key so).

  KEYS[1]  the session hash under the old key
  KEYS[2]  the hash under the new key

  Returns {version, expires_at, created_at}; -1 when the session is absent
  or torn (a torn one is deleted); -5 when the new key is already taken (the
  store then tries another). Field names must match src/store/redis/keys.ts.
]]
local created_at, _, version = live_session(KEYS[1])
if not created_at then
  return -1
end
if redis.call('RENAMENX', KEYS[1], KEYS[2]) == 0 then
  return -5
end
return {version, tonumber(redis.call('HGET', KEYS[2], 'expires_at')), created_at}
