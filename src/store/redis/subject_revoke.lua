-- Raises a subject's cut-off to the second after `now`, never below the cut-off in force nor a
-- floor (see `next_not_before`), and never shortens how long it is remembered: for the
-- lifetime given or the longest token lifetime kept (see `lifetimes_record.lua`), whichever is
-- longer.
-- KEYS[1] the cut-off to raise: "<not_before> <keep_until>"
-- KEYS[2] the token lifetimes kept, in the same slot: "<access> <refresh>"
-- KEYS[3] (optional) another cut-off of the same user, in the same slot: a floor
-- ARGV[1] now (Unix seconds)      ARGV[2] lifetime in seconds
-- ARGV[3] TTL slack in seconds    ARGV[4] the longest TTL
-- ARGV[5] which tokens the cut-off kills: access or every
-- Returns { not_before, keep_until } now in force, as decimal strings.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local lifetime = tonumber(ARGV[2])
local nb = now + 1
local keep = 0
local lifetimes = redis.call('GET', KEYS[2])
if lifetimes then
  local access, refresh = string.match(lifetimes, '^(%d+) (%d+)$')
  if not access then
    return redis.error_reply('malformed token lifetimes at ' .. KEYS[2])
  end
  local longest = tonumber(access)
  if ARGV[5] == 'every' and tonumber(refresh) > longest then longest = tonumber(refresh) end
  if longest > tonumber(ARGV[4]) then longest = tonumber(ARGV[4]) end
  if longest > lifetime then lifetime = longest end
end
local stored = redis.call('GET', key)
if stored then
  local old_nb, old_keep = string.match(stored, '^(%-?%d+) (%-?%d+)$')
  if not old_nb then
    return redis.error_reply('malformed subject cut-off at ' .. key)
  end
  if tonumber(old_nb) > nb then nb = tonumber(old_nb) end
  keep = tonumber(old_keep)
end
if KEYS[3] then
  local floor = redis.call('GET', KEYS[3])
  if floor then
    local floor_nb = string.match(floor, '^(%-?%d+) ')
    if floor_nb and tonumber(floor_nb) > nb then nb = tonumber(floor_nb) end
  end
end
if nb + lifetime > keep then keep = nb + lifetime end
local ttl = keep - now + tonumber(ARGV[3])
if ttl > tonumber(ARGV[4]) then ttl = tonumber(ARGV[4]) end
if ttl < 1 then ttl = 1 end
-- Both values are whole seconds far below 2^53, so Lua's numbers hold them exactly.
local nb_text = string.format('%d', nb)
local keep_text = string.format('%d', keep)
redis.call('SET', key, nb_text .. ' ' .. keep_text, 'EX', ttl)
return { nb_text, keep_text }
