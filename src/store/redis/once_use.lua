-- Marks a key used until an expiry: 1 the first time, 0 while an earlier use is live. The
-- stored expiry is compared with the caller's `now`, not left to the TTL, which only bounds
-- memory (it carries the replicas' clock slack).
-- KEYS[1] marker
-- ARGV[1] expires_at      ARGV[2] now      ARGV[3] TTL in seconds
local current = redis.call('GET', KEYS[1])
if current ~= false and tonumber(current) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
