-- Raises a subject's not-before and how long it is remembered (never lowers either).
-- KEYS[1] subject hash
-- ARGV[1] not_before      ARGV[2] keep_until      ARGV[3] TTL in seconds
-- Returns { not_before, keep_until } now in force, as stored (decimal strings).
local key = KEYS[1]
local nb = redis.call('HGET', key, 'nb')
if nb == false or tonumber(ARGV[1]) > tonumber(nb) then
  nb = ARGV[1]
  redis.call('HSET', key, 'nb', nb)
end
local keep = redis.call('HGET', key, 'keep')
if keep == false or tonumber(ARGV[2]) > tonumber(keep) then
  keep = ARGV[2]
  redis.call('HSET', key, 'keep', keep)
end
if redis.call('TTL', key) < tonumber(ARGV[3]) then
  redis.call('EXPIRE', key, ARGV[3])
end
return { nb, keep }
