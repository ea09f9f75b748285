--[[
  Deletes a session (a script rather than DEL so that it is fenced too).

  KEYS[1]  the session hash

  Returns 1 when a session was deleted, 0 when there was none.
]]
return redis.call('DEL', KEYS[1])
