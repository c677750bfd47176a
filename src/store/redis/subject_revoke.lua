-- Raises a subject's not-before (never lowers it) and how long it is remembered.
-- KEYS[1] subject hash
-- ARGV[1] not_before      ARGV[2] keep_until      ARGV[3] TTL in seconds
local key = KEYS[1]
local nb = redis.call('HGET', key, 'nb')
if nb == false or tonumber(ARGV[1]) > tonumber(nb) then
  redis.call('HSET', key, 'nb', ARGV[1])
end
local keep = redis.call('HGET', key, 'keep')
if keep == false or tonumber(ARGV[2]) > tonumber(keep) then
  redis.call('HSET', key, 'keep', ARGV[2])
end
if redis.call('TTL', key) < tonumber(ARGV[3]) then
  redis.call('EXPIRE', key, ARGV[3])
end
return 1
