--[[
  Prepended, after the fence (whose redis_now it uses), to the scripts that
  read or extend a session (see scripts.ts). Field names must match
  src/store/redis/keys.ts.

  A whole session has its seven fixed fields, and its payloads and attributes
  add up to its size field. Anything less is torn: every write here sets the
  data and the TTL in one script, but a Redis whose AOF loader applies part
  of a script's effects (docs/guarantees.md) can leave a hash with some of
  the fields, some of the attributes, or no TTL. A torn session is absent to
  every operation, and the first one that meets it deletes it.
]]

-- The expiry rule of src/session.ts expiryAfterActivity: activity extends a
-- session to now + its idle ttl, never past created_at + the absolute lifetime.
local function expiry(now, ttl_seconds, created_at, lifetime_ms)
  return math.min(now + ttl_seconds * 1000, created_at + lifetime_ms)
end

-- Reads the whole hash: its expires_at when it is a whole session, else nil.
local function whole_expiry(key)
  local fields = redis.call('HGETALL', key)
  local meta, size = {}, 0
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 5) == 'attr:' then
      size = size + #fields[i] - 5 + #fields[i + 1]
    else
      meta[fields[i]] = fields[i + 1]
    end
  end
  if meta.fleet_list_request and meta.fleet_list_response
    and tonumber(meta.created_at) and tonumber(meta.ttl) and tonumber(meta.version)
    and tonumber(meta.size) == size + #meta.fleet_list_request + #meta.fleet_list_response then
    return tonumber(meta.expires_at)
  end
  return nil
end

-- A session's created_at, ttl, version and size, or nil when it is absent or
-- torn (a torn one is deleted). A hash without a TTL cannot have been left
-- whole by a write: it is read in full, deleted if torn, and given the TTL
-- its expires_at says if whole (which removes it if that time has passed).
local function live_session(key)
  local meta = redis.call('HMGET', key, 'created_at', 'ttl', 'version', 'size', 'expires_at')
  local created_at, ttl = tonumber(meta[1]), tonumber(meta[2])
  local version, size = tonumber(meta[3]), tonumber(meta[4])
  if not (created_at and ttl and version and size and tonumber(meta[5])) then
    if meta[1] or meta[2] or meta[3] or meta[4] or meta[5] then
      redis.call('DEL', key)
    end
    return nil
  end
  if redis.call('PTTL', key) == -1 then
    local expires_at = whole_expiry(key)
    if not expires_at then
      redis.call('DEL', key)
      return nil
    end
    if expires_at <= redis_now then
      redis.call('DEL', key)
      return nil
    end
    redis.call('PEXPIRE', key, expires_at - redis_now)
  end
  return created_at, ttl, version, size
end
