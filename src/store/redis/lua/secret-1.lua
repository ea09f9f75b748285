--[[
  The secret that the keys a keyless SetSession or a RotateSessionKey with an
  idempotency key generates are derived with (src/idempotency.ts): made once,
  by the first server that asks, shared by every server on this Redis, kept
  without expiry.

  KEYS[1]  the secret's hash
  ARGV[1]  a fresh random secret, stored when there is none yet

  Returns the secret.
]]
local secret = redis.call('HGET', KEYS[1], 'secret')
if secret then
  return secret
end
redis.call('HSET', KEYS[1], 'secret', ARGV[1])
return ARGV[1]
