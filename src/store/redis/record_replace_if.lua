-- Replaces a record only if it is still exactly what the caller read.
-- KEYS[1] record key
-- ARGV[1] the record as read (JSON)     ARGV[2] the replacement (JSON)
-- Returns 1 when replaced, 0 when the record changed or is gone.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
