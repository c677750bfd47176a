-- Reserves one attempt: `attempts::reserve` in Rust, step by step. The window is the
-- counter's TTL, set at its first attempt.
-- KEYS[1] counter (attempts in the window)    KEYS[2] its last attempt (Unix seconds)
-- ARGV[1] now    ARGV[2] free    ARGV[3] base    ARGV[4] cap    ARGV[5] window, seconds
-- Returns 0 when granted, else the seconds to wait.
local now = tonumber(ARGV[1])
local free, base, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('TTL', KEYS[1])
if count > 0 and ttl < 0 then
  -- A counter without a window (written by an older build) starts over.
  count = 0
end
if count >= free and count > 0 then
  local beyond = count - free
  local delay = cap
  if beyond < 62 then
    delay = math.min(base * (2 ^ beyond), cap)
  end
  local last = tonumber(redis.call('GET', KEYS[2]) or '0')
  local allowed_at = math.min(last + delay, now + ttl)
  if now < allowed_at then
    return math.max(math.floor(allowed_at - now), 1)
  end
end
if count == 0 or ttl < 0 then
  redis.call('SET', KEYS[1], 1, 'EX', ARGV[5])
  ttl = tonumber(ARGV[5])
else
  redis.call('INCR', KEYS[1])
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ttl)
return 0
