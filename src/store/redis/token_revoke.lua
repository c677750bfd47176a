-- Puts an access token on the revocation list, keeping the later expiry if it is there already.
-- Returns 1 when the feed is owed an event: the list changed now, or it changed before and that
-- event's append did not complete (the owed mark is still there); 0 for a revocation already
-- recorded and announced, so that repeating it adds nothing to the feed.
-- KEYS[1] revocation entry    KEYS[2] owed mark
-- ARGV[1] expires_at      ARGV[2] TTL in seconds
local current = redis.call('GET', KEYS[1])
if current == false or tonumber(ARGV[1]) > tonumber(current) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
  return 1
end
return redis.call('EXISTS', KEYS[2])
