--[[
  Prepended to every script that writes (see scripts.ts), before its own header.

  ARGV[1]  the fence: the latest Redis time, Unix ms, at which the write may
           still apply. It closes before the service reports the call failed
           (its command timeout) and before the caller's deadline, with a
           margin (src/store/redis/connection.ts), so a command that reaches
           Redis late (Redis paused, a slow network) never applies after its
           caller was told it failed. This holds while the service's and
           Redis's clocks agree within that margin (docs/guarantees.md).

  The fence is removed from ARGV, so each script's own ARGV numbering starts
  at 1. redis_now is Redis's clock, Unix ms, for the includes that follow.
]]
local clock = redis.call('TIME')
local redis_now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if redis_now > tonumber(ARGV[1]) then
  return redis.error_reply('FENCED the caller stopped waiting before Redis ran this write')
end
table.remove(ARGV, 1)
