--[[
  Prepended, after the fence, to the scripts of the writes that honour an
  idempotency key (see scripts.ts and src/idempotency.ts). The script's own
  body runs as run(), and its reply goes through settle(), so the outcome is
  recorded in the same atomic step as the write. The record is a hash in the
  session's Cluster slot (src/store/redis/keys.ts).

  ARGV[1]      the record's ttl, ms; "" when the call has no idempotency key
  ARGV[2]      the request's fingerprint
  ARGV[3]      now, Unix ms: kept in the record, as a repeat reads the
               outcome as of the first call
  KEYS[#KEYS]  the record, when ARGV[1] is not ""

  These are removed from ARGV and KEYS, so the script's own numbering is
  unchanged. With a key the reply is {0, now, the script's reply} for a first
  call, {1, recorded now, recorded reply} for a repeat, and {-6} for a repeat
  with another request (nothing runs); without one, the script's own reply.
]]
local record_ttl = table.remove(ARGV, 1)
local record_fingerprint = table.remove(ARGV, 1)
local record_now = table.remove(ARGV, 1)
local record_key = nil
if record_ttl ~= '' then
  record_key = table.remove(KEYS)
  local recorded = redis.call('HGET', record_key, 'outcome')
  if recorded then
    local outcome = cmsgpack.unpack(recorded)
    if outcome[1] ~= record_fingerprint then
      return {-6}
    end
    return {1, outcome[2], outcome[3]}
  end
end

-- rotate-2.lua's "the new key is taken": the store tries again with another
-- key under the same record, so it is not an outcome.
local KEY_TAKEN = -5

local function settle(reply)
  if not record_key then
    return reply
  end
  if reply ~= KEY_TAKEN then
    redis.call('HSET', record_key, 'outcome', cmsgpack.pack({record_fingerprint, record_now, reply}))
    redis.call('PEXPIRE', record_key, record_ttl)
  end
  return {0, record_now, reply}
end
