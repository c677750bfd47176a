-- Creates a user or client record and its entry in the name index, unless it exists.
-- KEYS[1] record key      KEYS[2] index sorted set (same hash tag)
-- ARGV[1] record JSON     ARGV[2] name for the index
-- Returns 1 when created, 0 when the name was taken.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return 0
end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 1
