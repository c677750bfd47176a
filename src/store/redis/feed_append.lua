-- Appends one event to the revocation feed and drops entries whose retention has passed.
-- KEYS[1] the feed stream     KEYS[2] sorted set: stream id -> retention deadline (Unix s)
-- ARGV[1] event JSON          ARGV[2] the event's expires_at (compared with readers' `now`)
-- ARGV[3] retention deadline, Unix s, on the store's clock
-- ARGV[4] TTL in seconds for the retention deadline
-- ARGV[5] the store's clock now, Unix s
-- Returns the new entry's id.
local stream, deadlines = KEYS[1], KEYS[2]
local id = redis.call('XADD', stream, '*', 'e', ARGV[1], 'exp', ARGV[2])
redis.call('ZADD', deadlines, ARGV[3], id)

-- Entries expire individually (a token event after minutes, a family event after weeks), so
-- trimming goes by each entry's own deadline, not by stream position. At most 256 per append:
-- an append always removes more than it adds, so the backlog cannot grow.
local dead = redis.call('ZRANGEBYSCORE', deadlines, '-inf', '(' .. ARGV[5], 'LIMIT', 0, 256)
if #dead > 0 then
  redis.call('XDEL', stream, unpack(dead))
  redis.call('ZREM', deadlines, unpack(dead))
end

-- Both keys live until the longest-retained entry's deadline, so an idle feed disappears.
local ttl = tonumber(ARGV[4])
for _, key in ipairs({ stream, deadlines }) do
  if redis.call('TTL', key) < ttl then
    redis.call('EXPIRE', key, ARGV[4])
  end
end
return id
