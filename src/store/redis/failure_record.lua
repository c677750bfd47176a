-- Counts one failed login in a window that starts at the first failure.
-- KEYS[1] counter     ARGV[1] window, seconds
-- Returns { count, seconds until the window ends }.
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
return { count, redis.call('TTL', KEYS[1]) }
