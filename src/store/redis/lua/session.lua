--[[
  Prepended, after the fence, to the scripts that compute a session's expiry
  (see scripts.ts).
]]

-- The expiry rule of src/session.ts expiryAfterActivity: activity extends a
-- session to now + its idle ttl, never past created_at + the absolute lifetime.
local function expiry(now, ttl_seconds, created_at, lifetime_ms)
  return math.min(now + ttl_seconds * 1000, created_at + lifetime_ms)
end
