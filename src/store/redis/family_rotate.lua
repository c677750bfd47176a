-- Redeems a refresh token: rotation, grace-window repeat or reuse detection, atomically.
-- Touches only the family's own hash, so it runs on Redis Cluster (the feed event for a reuse is
-- appended by the caller afterwards, see `rotate_refresh`).
-- KEYS[1] family hash
-- ARGV[1] presented jti          ARGV[2] successor jti
-- ARGV[3] successor issued_at    ARGV[4] successor expires_at
-- ARGV[5] now, Unix ms           ARGV[6] now, Unix s (floor of ARGV[5] / 1000)
-- ARGV[7] grace window, ms       ARGV[8] TTL in seconds for the rotated family
-- ARGV[9] successor's access-token lifetime, s ('' when not known): the family keeps the longest
--         it has seen, and none once one was not known (`RefreshGeneration::access_lifetime`)
-- Returns { outcome, field, value, ... } with outcome one of
--   'inactive'       unknown, revoked or expired family (no fields)
--   'inactive_owed'  revoked family whose feed event was never confirmed (fields follow)
--   'rotated' | 'repeated' | 'reused'  (the family's fields after the change follow)
local key = KEYS[1]
local fields = redis.call('HGETALL', key)
if #fields == 0 then
  return { 'inactive' }
end
local family = {}
for i = 1, #fields, 2 do
  family[fields[i]] = fields[i + 1]
end

if family['rev'] == '1' then
  if family['feed'] == 'owed' then
    return { 'inactive_owed', unpack(fields) }
  end
  return { 'inactive' }
end
if tonumber(family['exp']) <= tonumber(ARGV[6]) then
  return { 'inactive' }
end

if ARGV[1] == family['jti'] then
  redis.call('HSET', key, 'prev', ARGV[1], 'rot', ARGV[5], 'jti', ARGV[2], 'iat', ARGV[3],
    'exp', ARGV[4])
  -- 'ajti' names the generation 'attl' was recorded for: a replica of an older version rotates
  -- without either, and the tokens it issued may have lived longer.
  local attl = family['attl']
  if family['ajti'] ~= family['jti'] then
    attl = nil
  end
  if ARGV[9] == '' or attl == nil then
    redis.call('HDEL', key, 'attl', 'ajti')
  else
    if tonumber(ARGV[9]) > tonumber(attl) then
      attl = ARGV[9]
    end
    redis.call('HSET', key, 'attl', attl, 'ajti', ARGV[2])
  end
  redis.call('EXPIRE', key, ARGV[8])
  return { 'rotated', unpack(redis.call('HGETALL', key)) }
end

local grace = tonumber(ARGV[7])
if family['prev'] ~= nil and ARGV[1] == family['prev'] and grace > 0
    and family['rot'] ~= nil and tonumber(ARGV[5]) - tonumber(family['rot']) <= grace then
  return { 'repeated', unpack(fields) }
end

-- Reuse: revoke the whole family. 'feed' = 'owed' stays until the caller has appended the
-- family's revocation event to the feed.
redis.call('HSET', key, 'rev', '1', 'feed', 'owed')
return { 'reused', unpack(redis.call('HGETALL', key)) }
