--[[
  Merges a change into an existing session of the compact layout in one
  atomic step. Never creates a session, so an update cannot bring back a
  deleted or expired one; a torn session is deleted and reported absent.

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
  ARGV[12..11+2n]  attribute field, value ... (fields carry the "." prefix)
  ARGV[12+2n..]    attribute fields to remove

  Returns {0, HGETALL of the updated session}, or
          {-1} absent or torn, {-2, stored version} version conflict,
          {-3, size} too large, {-4, count} too many attributes.
]]
local key = KEYS[1]
local now = tonumber(ARGV[1])
local created_at, stored_ttl, version, size, _, owner, request_length = live_session(key)
if not created_at then
  return {-1}
end
if ARGV[5] ~= '' and tonumber(ARGV[5]) ~= version then
  return {-2, version}
end

local stored_pieces = piece_count(key)
local count = redis.call('HLEN', key) - 1 - stored_pieces
if owner then
  count = count - 1
end
local set_count = tonumber(ARGV[11])
local first_remove = 12 + 2 * set_count

-- New payloads: the stored ones, split at the request length, with either
-- replaced.
local payloads, stored_whole = nil, false
if ARGV[7] == '1' or ARGV[9] == '1' then
  local stored = table.concat(payload_pieces(key))
  -- Payloads whole and over 64 bytes say the hash is a hashtable, where
  -- pieces would cost more than they save.
  stored_whole = stored_pieces == 1 and #stored > PIECE
  local request = ARGV[7] == '1' and ARGV[8] or string.sub(stored, 1, request_length)
  local response = ARGV[9] == '1' and ARGV[10] or string.sub(stored, request_length + 1)
  payloads = request .. response
  size = size - #stored + #payloads
  request_length = #request
end
for i = first_remove, #ARGV do
  if redis.call('HEXISTS', key, ARGV[i]) == 1 then
    size = size - redis.call('HSTRLEN', key, ARGV[i]) - (#ARGV[i] - 1)
    count = count - 1
  end
end
for i = 12, first_remove - 1, 2 do
  if redis.call('HEXISTS', key, ARGV[i]) == 1 then
    size = size - redis.call('HSTRLEN', key, ARGV[i]) + #ARGV[i + 1]
  else
    size = size + #ARGV[i] - 1 + #ARGV[i + 1]
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
local index = index_of(owner)
if expires_at <= now then
  redis.call('DEL', key)
  reindex(index, key)
  return {-1}
end

for i = first_remove, #ARGV do
  redis.call('HDEL', key, ARGV[i])
end
local fields = {'m', meta_string(created_at, expires_at, version + 1, ttl, size, request_length)}
if payloads then
  for i = 0, stored_pieces - 1 do
    redis.call('HDEL', key, 'p' .. i)
  end
  local in_pieces = pieces_allowed and not stored_whole
    and math.ceil(#payloads / PIECE) <= MAX_PIECES
  payload_fields(fields, payloads, in_pieces)
end
for i = 12, first_remove - 1 do
  fields[#fields + 1] = ARGV[i]
end
hset_all(key, fields)
redis.call('PEXPIRE', key, expires_at - now)
reindex(index, key)
return {0, redis.call('HGETALL', key)}
