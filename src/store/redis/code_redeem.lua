-- Redeems an authorization code: {'1', record} the first time (the code is spent and remembers
-- the family), {'2', family} when it was spent before (and it is marked replayed), {'0'} when it
-- is unknown or expired unused. The expiry is the stored one compared with the caller's `now`;
-- the TTL only bounds memory.
-- KEYS[1] code
-- ARGV[1] family id      ARGV[2] now
local fields = redis.call('HMGET', KEYS[1], 'data', 'exp', 'fam')
if not fields[1] then
  return {'0'}
end
if fields[3] then
  redis.call('HSET', KEYS[1], 'rep', '1')
  return {'2', fields[3]}
end
if tonumber(ARGV[2]) >= tonumber(fields[2]) then
  return {'0'}
end
redis.call('HSET', KEYS[1], 'fam', ARGV[1])
return {'1', fields[1]}
