-- Puts an access token on the revocation list, keeping the later expiry if it is there already.
-- KEYS[1] revocation entry
-- ARGV[1] expires_at      ARGV[2] TTL in seconds
local current = redis.call('GET', KEYS[1])
if current == false or tonumber(ARGV[1]) > tonumber(current) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
