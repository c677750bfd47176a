-- Stores a new authorization code as a hash: 1 when stored, 0 when the key exists.
-- KEYS[1] code
-- ARGV[1] the code's record (JSON)      ARGV[2] expires_at      ARGV[3] TTL in seconds
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'exp', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
