-- Deletes a user or client record and its index entry.
-- KEYS[1] record key      KEYS[2] index sorted set (same hash tag)
-- ARGV[1] name in the index
-- Returns 1 when a record was deleted, 0 when there was none.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
