--[[
  An owner's live sessions, oldest first, after dropping the index entries
  of sessions that are gone (compact.lua's prune); sessions past their
  expiry, or whose m field is torn, are deleted and dropped too.

  KEYS[1]  the owner's index
  ARGV[1]  the session stem of the owner's keys ("<prefix>S:{<tag>}")
  ARGV[2]  "1" for each session's whole hash, "0" for its m field only
  ARGV[3]  now, Unix ms
  ARGV[4]  the most content bytes a listing with content may carry

  Returns {0, {handle, m or HGETALL, handle, m or HGETALL, ...}}, or
  {-3, content bytes} when the content asked for is more than ARGV[4].
]]
local index, stem, now = KEYS[1], ARGV[1], tonumber(ARGV[3])
local listed, dropped, content = {}, false, 0
for _, handle in ipairs(prune(index, stem)) do
  local key = stem .. handle
  local m = redis.call('HGET', key, 'm')
  local created_at, expires_at, _, _, size = parse_meta(m)
  if not created_at or expires_at <= now then
    redis.call('DEL', key)
    redis.call('ZREM', index, handle)
    dropped = true
  else
    listed[#listed + 1] = handle
    listed[#listed + 1] = m
    content = content + size
  end
end
if dropped then
  prune(index, stem)
end
if ARGV[2] == '1' then
  if content > tonumber(ARGV[4]) then
    return {-3, content}
  end
  for i = 1, #listed, 2 do
    listed[i + 1] = redis.call('HGETALL', stem .. listed[i])
  end
end
return {0, listed}
