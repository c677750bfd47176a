-- Reads feed entries after a cursor, skipping those that expired before `now`.
-- KEYS[1] the feed stream
-- ARGV[1] XRANGE start: '-' or the id after the cursor     ARGV[2] at most this many events
-- ARGV[3] now, Unix s (the caller's)
-- Returns { last_generated_id or '', id, event JSON, id, event JSON, ... }.
local stream = KEYS[1]
if redis.call('EXISTS', stream) == 0 then
  return { '' }
end
local last = ''
local info = redis.call('XINFO', 'STREAM', stream)
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then
    last = info[i + 1]
  end
end
local out = { last }
local want = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local start = ARGV[1]
local found = 0
while found < want do
  local batch = redis.call('XRANGE', stream, start, '+', 'COUNT', 128)
  for _, entry in ipairs(batch) do
    local event, exp
    local f = entry[2]
    for i = 1, #f, 2 do
      if f[i] == 'e' then
        event = f[i + 1]
      elseif f[i] == 'exp' then
        exp = f[i + 1]
      end
    end
    if event ~= nil and exp ~= nil and tonumber(exp) >= now then
      out[#out + 1] = entry[1]
      out[#out + 1] = event
      found = found + 1
      if found >= want then
        break
      end
    end
  end
  if #batch < 128 then
    break
  end
  start = '(' .. batch[#batch][1]
end
return out
