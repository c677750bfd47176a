-- Raises the token lifetimes kept at KEYS[1] ("<access> <refresh>", seconds) to at least
-- ARGV[1] and ARGV[2]; never lowers them, and keeps them for good.
-- Returns { access, refresh } now kept, as decimal strings.
local access = tonumber(ARGV[1])
local refresh = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
if stored then
  local kept_access, kept_refresh = string.match(stored, '^(%d+) (%d+)$')
  if not kept_access then
    return redis.error_reply('malformed token lifetimes at ' .. KEYS[1])
  end
  if tonumber(kept_access) > access then access = tonumber(kept_access) end
  if tonumber(kept_refresh) > refresh then refresh = tonumber(kept_refresh) end
end
local access_text = string.format('%d', access)
local refresh_text = string.format('%d', refresh)
redis.call('SET', KEYS[1], access_text .. ' ' .. refresh_text)
return { access_text, refresh_text }
