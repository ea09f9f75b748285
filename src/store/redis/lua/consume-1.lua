--[[
  Reads and deletes a session in one atomic step: of two consumers racing for
  the same session, exactly one gets it.

  KEYS[1]  the session hash

  Returns the session as HGETALL returns it: empty when absent. The store
  reads a torn session (see session.lua) as absent; it is deleted either way.
]]
local session = redis.call('HGETALL', KEYS[1])
if #session > 0 then
  redis.call('DEL', KEYS[1])
end
return session
