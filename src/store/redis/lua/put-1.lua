--[[
  Creates a session, or replaces the whole session, in one atomic step.
  The version continues from the replaced session so that a stale
  expected_version still conflicts after a replace.

  KEYS[1]   the session hash
  ARGV[1]   now, Unix ms
  ARGV[2]   idle ttl, seconds
  ARGV[3]   absolute lifetime, ms
  ARGV[4]   content size, bytes
  ARGV[5]   fleet_list_request
  ARGV[6]   fleet_list_response
  ARGV[7..] attribute field, value, field, value ... (fields carry the "attr:" prefix)

  Returns {version, expires_at}
  Field names must match src/store/redis/keys.ts.
]]
local key = KEYS[1]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local expires_at = expiry(now, ttl, now, tonumber(ARGV[3]))
local version = tonumber(redis.call('HGET', key, 'version') or '0') + 1

-- All fields in one HSET (in slices: unpack is limited to a few thousand
-- values), so that a replica or an AOF that applies part of this script's
-- effects sees the old session gone or the new one whole, never a session
-- without its attributes.
local fields = {
  'fleet_list_request', ARGV[5], 'fleet_list_response', ARGV[6],
  'created_at', now, 'expires_at', expires_at, 'version', version, 'ttl', ttl, 'size', ARGV[4],
}
for i = 7, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('DEL', key)
for i = 1, #fields, 4000 do
  redis.call('HSET', key, unpack(fields, i, math.min(i + 3999, #fields)))
end
redis.call('PEXPIRE', key, expires_at - now)
return {version, expires_at}
