--[[
  Moves a session of the compact layout to a new key in one atomic step: the
  hash and its expiry go to KEYS[2] and KEYS[1] is gone; its owner's index
  lists the new handle in place of the old. RENAMENX keeps the TTL and
  refuses to overwrite. On Cluster both keys lie in one slot (the store
  picks the new key so; a session with an owner keeps its tag).

  KEYS[1]  the session hash under the old key
  KEYS[2]  the hash under the new key

  Returns {version, expires_at, created_at}; -1 when the session is absent
  or torn (a torn one is deleted); -5 when the new key is already taken (the
  store then tries another).
]]
local created_at, _, version, _, expires_at, owner = live_session(KEYS[1])
if not created_at then
  return -1
end
if redis.call('RENAMENX', KEYS[1], KEYS[2]) == 0 then
  return -5
end
local index = index_of(owner)
if index then
  -- The new handle takes the old one's place in the order.
  local score = redis.call('ZSCORE', index, handle_of(KEYS[1])) or created_at * 1000
  redis.call('ZREM', index, handle_of(KEYS[1]))
  redis.call('ZADD', index, score, handle_of(KEYS[2]))
  reindex(index, KEYS[2])
end
return {version, expires_at, created_at}
