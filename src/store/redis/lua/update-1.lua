--[[
  Merges a change into an existing session in one atomic step. Never creates
  a session, so an update cannot bring back a deleted or expired one; a torn
  session is deleted and reported absent.

  KEYS[1]   the session hash
  ARGV[1]   now, Unix ms
  ARGV[2]   absolute lifetime, ms
  ARGV[3]   size limit, bytes
  ARGV[4]   attribute count limit
  ARGV[5]   expected version, or "" for none
  ARGV[6]   new idle ttl, seconds; 0 keeps the session's ttl
  ARGV[7]   "1" when ARGV[8] replaces fleet_list_request
  ARGV[8]   fleet_list_request
  ARGV[9]   "1" when ARGV[10] replaces fleet_list_response
  ARGV[10]  fleet_list_response
  ARGV[11]  number of attributes to set (n)
  ARGV[12..11+2n]  attribute field, value ... (fields carry the "attr:" prefix)
  ARGV[12+2n..]    attribute fields to remove

  Returns {0, HGETALL of the updated session}, or
          {-1} absent or torn, {-2, stored version} version conflict,
          {-3, size} too large, {-4, count} too many attributes.
  Field names must match src/store/redis/keys.ts.
]]
local key = KEYS[1]
local now = tonumber(ARGV[1])
local created_at, stored_ttl, version, size = live_session(key)
if not created_at then
  return {-1}
end
if ARGV[5] ~= '' and tonumber(ARGV[5]) ~= version then
  return {-2, version}
end

local PREFIX_LEN = 5 -- #'attr:'
local count = redis.call('HLEN', key) - 7 -- the seven fixed fields
local set_count = tonumber(ARGV[11])
local first_remove = 12 + 2 * set_count

local function replace(field, value)
  size = size - redis.call('HSTRLEN', key, field) + #value
end
if ARGV[7] == '1' then replace('fleet_list_request', ARGV[8]) end
if ARGV[9] == '1' then replace('fleet_list_response', ARGV[10]) end
for i = first_remove, #ARGV do
  if redis.call('HEXISTS', key, ARGV[i]) == 1 then
    size = size - redis.call('HSTRLEN', key, ARGV[i]) - (#ARGV[i] - PREFIX_LEN)
    count = count - 1
  end
end
for i = 12, first_remove - 1, 2 do
  if redis.call('HEXISTS', key, ARGV[i]) == 1 then
    replace(ARGV[i], ARGV[i + 1])
  else
    size = size + #ARGV[i] - PREFIX_LEN + #ARGV[i + 1]
    count = count + 1
  end
end
if size > tonumber(ARGV[3]) then
  return {-3, size}
end
if count > tonumber(ARGV[4]) then
  return {-4, count}
end

local ttl = tonumber(ARGV[6])
if ttl == 0 then
  ttl = stored_ttl
end
local expires_at = expiry(now, ttl, created_at, tonumber(ARGV[2]))
if expires_at <= now then
  redis.call('DEL', key)
  return {-1}
end

for i = first_remove, #ARGV do
  redis.call('HDEL', key, ARGV[i])
end
if ARGV[7] == '1' then redis.call('HSET', key, 'fleet_list_request', ARGV[8]) end
if ARGV[9] == '1' then redis.call('HSET', key, 'fleet_list_response', ARGV[10]) end
for i = 12, first_remove - 1, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', key, 'version', version + 1, 'ttl', ttl, 'size', size, 'expires_at', expires_at)
redis.call('PEXPIRE', key, expires_at - now)
return {0, redis.call('HGETALL', key)}
