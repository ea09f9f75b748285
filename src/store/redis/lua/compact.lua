--[[
  Prepended, after the fence (whose redis_now it uses), to the scripts of the
  compact layout (src/store/redis/keys.ts, docs/redis-layout.md).

  A session is one hash:
    m        "created_at,expires_at,version,ttl,size,request length"
             (ms, ms, n, s, bytes, bytes)
    o        the owner's digest, when the session has an owner
    p0 p1 .. the payloads, the fleet-list request then the response, in one
             field, or in pieces of 64 bytes so that a small session stays a
             listpack; absent when both are empty
    .<name>  an attribute
  A whole session has a valid m, its pieces and attributes add up to its
  size, and its request length is within the payloads. Anything less is
  torn (session.lua says how that happens) and is deleted by the first
  operation that meets it.

  An owner's index is a sorted set under <prefix>o:{<tag>}<owner digest>:
  its members are the handles of the owner's sessions (the last 22
  characters of their Redis keys), in the order they were created (scored by
  created_at in µs, each after the last). The session keys of
  an owner carry the same {<tag>}, so the index and its sessions share one
  Cluster slot and one script changes them together.
]]

-- Every compact script's first two arguments, removed from ARGV here: the
-- owner stem of its key ("<prefix>o:{<tag>}", "" for a key without a tag; an
-- owner's index key is the stem and the owner's digest), and "1" when
-- payloads may be stored in pieces (REDIS_PAYLOAD_PIECES).
local owner_stem = table.remove(ARGV, 1)
local pieces_allowed = table.remove(ARGV, 1) == '1'

-- The expiry rule of src/session.ts expiryAfterActivity.
local function expiry(now, ttl_seconds, created_at, lifetime_ms)
  return math.min(now + ttl_seconds * 1000, created_at + lifetime_ms)
end

local PIECE = 64
-- The most pieces payloads are cut in (keys.ts Compact.maxPieces).
local MAX_PIECES = 16

local function meta_string(created_at, expires_at, version, ttl, size, request_length)
  return created_at .. ',' .. expires_at .. ',' .. version .. ',' .. ttl .. ',' .. size
    .. ',' .. request_length
end

-- created_at, expires_at, version, ttl, size, request length of an m field, or nil.
local function parse_meta(m)
  if not m then
    return nil
  end
  local c, e, v, t, s, r = string.match(m, '^(%d+),(%d+),(%d+),(%d+),(%d+),(%d+)$')
  if not c then
    return nil
  end
  return tonumber(c), tonumber(e), tonumber(v), tonumber(t), tonumber(s), tonumber(r)
end

-- A session's handle: the last 22 characters of its key.
local function handle_of(key)
  return string.sub(key, -22)
end

-- Reads the whole hash: its expires_at when it is a whole session (its
-- content adds up to its size, and no payload piece is missing), else nil.
local function whole_expiry(key)
  local fields = redis.call('HGETALL', key)
  local m, size, payloads, pieces, last = nil, 0, 0, 0, -1
  for i = 1, #fields, 2 do
    local name, first = fields[i], string.sub(fields[i], 1, 1)
    if name == 'm' then
      m = fields[i + 1]
    elseif first == '.' then
      size = size + #name - 1 + #fields[i + 1]
    elseif first == 'p' then
      payloads = payloads + #fields[i + 1]
      pieces = pieces + 1
      last = math.max(last, tonumber(string.sub(name, 2)) or math.huge)
    end
  end
  local _, expires_at, _, _, stored_size, request_length = parse_meta(m)
  if expires_at and stored_size == size + payloads and request_length <= payloads
    and pieces == last + 1 then
    return expires_at
  end
  return nil
end

-- Whether the session under `key` belongs to the owner whose index is
-- `index` (whose last 22 characters are the owner digest). A key whose
-- session went may hold another since: another owner's, or one without.
local function owned_by(key, index)
  return redis.call('HGET', key, 'o') == string.sub(index, -22)
end

-- Drops the owner's index entries of sessions that are gone (or are no
-- longer its own), and makes the index expire with its longest-lived
-- session (or deletes it when none is left). Returns the live handles,
-- oldest first.
local function prune(index, session_stem)
  local live, longest = {}, 0
  for _, handle in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local key = session_stem .. handle
    local ttl = redis.call('PTTL', key)
    if ttl == -2 or not owned_by(key, index) then
      redis.call('ZREM', index, handle)
    else
      live[#live + 1] = handle
      if ttl > longest then
        longest = ttl
      end
    end
  end
  if #live == 0 then
    redis.call('DEL', index)
  elseif longest > 0 then
    redis.call('PEXPIRE', index, longest)
  end
  return live
end

-- The index key of a session's owner: the owner stem ("<prefix>o:{<tag>}",
-- from the session key's tag) and the digest in its o field.
local function index_of(owner)
  if owner and owner_stem ~= '' then
    return owner_stem .. owner
  end
  return nil
end

-- After a session of the owner changed or went: the index is exact again.
local function reindex(index, key)
  if index then
    prune(index, string.sub(key, 1, -23))
  end
end

-- A session's created_at, ttl, version, size, expires_at, owner and request
-- length, or nil
-- when it is absent or torn (a torn one is deleted, and leaves its owner's
-- index at the next prune). A hash without a TTL cannot have been left whole
-- by a write: it is read in full, deleted if torn, and given the TTL its
-- expires_at says if whole.
local function live_session(key)
  local fields = redis.call('HMGET', key, 'm', 'o')
  local created_at, expires_at, version, ttl, size, request_length = parse_meta(fields[1])
  if not created_at then
    if redis.call('EXISTS', key) == 1 then
      redis.call('DEL', key)
    end
    return nil
  end
  if redis.call('PTTL', key) == -1 then
    local whole = whole_expiry(key)
    if not whole or whole <= redis_now then
      redis.call('DEL', key)
      return nil
    end
    redis.call('PEXPIRE', key, whole - redis_now)
  end
  return created_at, ttl, version, size, expires_at, fields[2], request_length
end

-- Appends the payloads' fields (p0, p1 ...) to `fields`: in pieces of 64
-- bytes when `pieces`, else whole; nothing when empty.
local function payload_fields(fields, payloads, pieces)
  if #payloads == 0 then
    return
  end
  if not pieces then
    fields[#fields + 1] = 'p0'
    fields[#fields + 1] = payloads
    return
  end
  local n = 0
  for i = 1, #payloads, PIECE do
    fields[#fields + 1] = 'p' .. n
    fields[#fields + 1] = string.sub(payloads, i, i + PIECE - 1)
    n = n + 1
  end
end

-- How many pieces the payloads are in (pieces are never empty).
local function piece_count(key)
  local n = 0
  while redis.call('HEXISTS', key, 'p' .. n) == 1 do
    n = n + 1
  end
  return n
end

-- The payloads' pieces, in order.
local function payload_pieces(key)
  local pieces = {}
  while true do
    local piece = redis.call('HGET', key, 'p' .. #pieces)
    if not piece then
      return pieces
    end
    pieces[#pieces + 1] = piece
  end
end

-- HSET in slices: unpack is limited to a few thousand values.
local function hset_all(key, fields)
  for i = 1, #fields, 4000 do
    redis.call('HSET', key, unpack(fields, i, math.min(i + 3999, #fields)))
  end
end
