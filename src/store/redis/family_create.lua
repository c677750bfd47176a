-- Stores a new refresh-token family unless one with this id exists.
-- KEYS[1] family hash
-- ARGV[1] TTL in seconds; ARGV[2..] field, value pairs
-- Returns 1 when stored, 0 when the id was taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
