-- Verifies that waiting jobs PostgreSQL knows of are somewhere in the queue's keys
-- (ready, delayed or in flight). Mode "find" returns the ids that are not; mode
-- "put" puts those back (Redis lost them: failover to a lagging replica, an older
-- snapshot, eviction; or a refused claim gives them back).
-- KEYS[1] ready  KEYS[2] delayed  KEYS[3] inflight  KEYS[4] seq  KEYS[5] marker
-- ARGV[1] "find" or "put"
-- ARGV[2..]: triples of (job id, priority, ms until due by PostgreSQL's clock; 0 = due)
-- Returns: "find": the missing ids; "put": how many were put back.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local band = 1099511627776
local put = ARGV[1] == 'put'
local missing = {}
local n = 0
for i = 2, #ARGV, 3 do
  local id, prio, wait = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local member = prio .. '|' .. id
  if not redis.call('ZSCORE', KEYS[1], id) and not redis.call('ZSCORE', KEYS[3], id)
     and not redis.call('ZSCORE', KEYS[2], member) then
    if not put then
      missing[#missing + 1] = id
    elseif wait > 0 then
      redis.call('ZADD', KEYS[2], 'NX', now + wait, member)
      n = n + 1
    else
      local seq = redis.call('INCR', KEYS[4])
      redis.call('ZADD', KEYS[1], 'NX', (1000 - prio) * band + seq, id)
      n = n + 1
    end
  end
end
if not put then return missing end
if n > 0 then redis.call('ZADD', KEYS[5], 0, '0') end
return n
