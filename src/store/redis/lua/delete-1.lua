--[[
  Deletes a session (a script rather than DEL so that it is fenced too).

  KEYS[1]  the session hash

  Returns 1 when a session was deleted, 0 when there was none (a torn one is
  deleted too, and counts as none).
]]
if not live_session(KEYS[1]) then
  return 0
end
return redis.call('DEL', KEYS[1])
