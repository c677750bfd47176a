-- Reads a failed-login counter.
-- KEYS[1] counter
-- Returns { count, seconds until the window ends }, { 0, 0 } when there is none.
local count = redis.call('GET', KEYS[1])
if count == false then
  return { 0, 0 }
end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  ttl = 0
end
return { tonumber(count), ttl }
