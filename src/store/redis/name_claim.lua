-- Claims an account name (lowercased) for one kind of account, for good: users and clients
-- never share a name, also after one of them is deleted.
-- KEYS[1] the name's claim      ARGV[1] the kind: user or client
-- Returns the kind that holds the name now: ARGV[1] when the claim is (or was already) ours.
local owner = redis.call('GET', KEYS[1])
if owner then
  return owner
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
