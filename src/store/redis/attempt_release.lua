-- Gives back one reserved attempt; never below zero, and the window (TTL) is kept.
-- KEYS[1] counter
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
