-- Revokes a family.
-- KEYS[1] family hash
-- ARGV[1] now, Unix s
-- Returns { outcome, field, value, ... } with outcome one of
--   'unknown'  no such family, or it has expired (no fields)
--   'already'  revoked before and its feed event was confirmed (no fields)
--   'owed'     revoked before, but its feed event was never confirmed (fields follow)
--   'revoked'  revoked now (fields follow)
local key = KEYS[1]
local fields = redis.call('HGETALL', key)
if #fields == 0 then
  return { 'unknown' }
end
local family = {}
for i = 1, #fields, 2 do
  family[fields[i]] = fields[i + 1]
end
if family['rev'] == '1' then
  if family['feed'] == 'owed' then
    return { 'owed', unpack(fields) }
  end
  return { 'already' }
end
if tonumber(family['exp']) <= tonumber(ARGV[1]) then
  return { 'unknown' }
end
redis.call('HSET', key, 'rev', '1', 'feed', 'owed')
return { 'revoked', unpack(redis.call('HGETALL', key)) }
