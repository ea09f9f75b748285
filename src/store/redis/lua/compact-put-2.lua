--[[
  Creates a session, or replaces the whole session, in the compact layout
  (compact.lua), in one atomic step. The version continues from the replaced
  session so that a stale expected_version still conflicts after a replace,
  including one in the legacy layout that it retires (ARGV[9]). With an owner, the session joins its
  index, making room at the owner's limit; a replaced session leaves a
  previous owner's index.

  KEYS[1]   the session hash
  KEYS[2]   the owner's index, when ARGV[6] is not ""
  KEYS[#KEYS]  the session's legacy-layout hash, when ARGV[9] is "1"
  ARGV[1]   now, Unix ms
  ARGV[2]   idle ttl, seconds
  ARGV[3]   absolute lifetime, ms
  ARGV[4]   content size, bytes
  ARGV[5]   the fleet-list request's length, bytes
  ARGV[6]   the owner's digest, or ""
  ARGV[7]   the most live sessions an owner may hold
  ARGV[8]   at that limit: "evict-oldest" or "refuse"
  ARGV[9]   "1" to retire a copy of the session in the legacy layout (the last key)
  ARGV[10..] the content's fields and values: the payloads (p0, or pieces
            p0, p1 ..., cut by the store: cutting them here cost Redis twice
            the CPU) and the attributes (.<name>)

  Returns {version, expires_at, sessions evicted}, or {-7, sessions held}
  when the owner is at its limit and the policy refuses.
]]
local key = KEYS[1]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local expires_at = expiry(now, ttl, now, tonumber(ARGV[3]))
local owner = ARGV[6]
local handle = handle_of(key)
local session_stem = string.sub(key, 1, -23)
local old = redis.call('HMGET', key, 'm', 'o')
local _, _, old_version = parse_meta(old[1])

local index = nil
local evicted = 0
if owner ~= '' then
  index = KEYS[2]
  local live = prune(index, session_stem)
  local held = #live
  for _, listed in ipairs(live) do
    if listed == handle then
      held = 0 -- a replacement needs no room
      break
    end
  end
  local limit = tonumber(ARGV[7])
  if held >= limit then
    if ARGV[8] == 'refuse' then
      return {-7, held}
    end
    for i = 1, held - limit + 1 do
      redis.call('DEL', session_stem .. live[i])
      redis.call('ZREM', index, live[i])
      evicted = evicted + 1
    end
  end
end

-- A copy in the legacy layout is replaced too: its version goes on here.
local retired_version = 0
if ARGV[9] == '1' then
  local legacy = KEYS[#KEYS]
  retired_version = tonumber(redis.call('HGET', legacy, 'version')) or 0
  redis.call('DEL', legacy)
end
local version = math.max(old_version or 0, retired_version) + 1

-- All fields in one HSET, so that a replica or an AOF that applies part of
-- this script's effects sees the old session gone or the new one whole
-- (straight from ARGV while unpack can take them all).
local meta = meta_string(now, expires_at, version, ttl, ARGV[4], ARGV[5])
redis.call('DEL', key)
if #ARGV - 9 > 7990 then
  local fields = {'m', meta}
  if index then
    fields[#fields + 1] = 'o'
    fields[#fields + 1] = owner
  end
  for i = 10, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
  hset_all(key, fields)
elseif index then
  redis.call('HSET', key, 'm', meta, 'o', owner, unpack(ARGV, 10))
else
  redis.call('HSET', key, 'm', meta, unpack(ARGV, 10))
end
redis.call('PEXPIRE', key, expires_at - now)

local old_index = index_of(old[2])
if old_index and old_index ~= index then
  redis.call('ZREM', old_index, handle)
  reindex(old_index, key)
end
if index then
  -- Scored by creation, in µs, and after every session already listed, so
  -- that two made in the same millisecond keep the order they were made in.
  local score = now * 1000
  local newest = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if newest[2] and tonumber(newest[2]) >= score then
    score = tonumber(newest[2]) + 1
  end
  redis.call('ZADD', index, score, handle)
  -- Its TTL now follows its longest-lived session, which may be shorter
  -- than before if this session replaced or evicted that one.
  reindex(index, key)
end
return {version, expires_at, evicted}
