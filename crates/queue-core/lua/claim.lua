-- Claims up to ARGV[1] ready job ids for a worker: promotes due delayed ids (at most
-- ARGV[5] per call, so a backlog never stalls Redis), honours the pause flag and the
-- queue's sliding-window rate limit, and leases what it pops in the in-flight set.
-- KEYS[1] ready  KEYS[2] delayed  KEYS[3] inflight (zset, score = lease deadline ms)
-- KEYS[4] paused (string)  KEYS[5] rate window (zset of start times)  KEYS[6] marker
-- KEYS[7] seq
-- ARGV[1] max ids  ARGV[2] lease ms  ARGV[3] rate max (0 = none)  ARGV[4] rate window ms
-- ARGV[5] promote limit
-- Returns: {-1, 0} paused; {-2, wait ms} rate-limited;
--          {n, ms until the next delayed id or -1, id1 … idn}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local band = 1099511627776

if redis.call('EXISTS', KEYS[4]) == 1 then return {-1, 0} end

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, member in ipairs(due) do
  local sep = string.find(member, '|', 1, true)
  local prio = tonumber(string.sub(member, 1, sep - 1))
  local seq = redis.call('INCR', KEYS[7])
  redis.call('ZADD', KEYS[1], 'NX', (1000 - prio) * band + seq, string.sub(member, sep + 1))
  redis.call('ZREM', KEYS[2], member)
end

local want = tonumber(ARGV[1])
local rate_max = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
if rate_max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - window)
  local allowance = rate_max - redis.call('ZCARD', KEYS[5])
  if allowance <= 0 then
    local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    return {-2, math.max(1, tonumber(oldest[2]) + window - now + 1)}
  end
  if allowance < want then want = allowance end
end

local popped = redis.call('ZPOPMIN', KEYS[1], want)
local reply = {0, -1}
local deadline = now + tonumber(ARGV[2])
for i = 1, #popped, 2 do
  local id = popped[i]
  redis.call('ZADD', KEYS[3], deadline, id)
  if rate_max > 0 then redis.call('ZADD', KEYS[5], now, now .. ':' .. id) end
  reply[#reply + 1] = id
end
reply[1] = #reply - 2
if rate_max > 0 and reply[1] > 0 then redis.call('PEXPIRE', KEYS[5], window) end

-- Wake the next blocked worker while work remains (the marker cascades).
if redis.call('ZCARD', KEYS[1]) > 0 then
  redis.call('ZADD', KEYS[6], 0, '0')
else
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if nxt[2] then reply[2] = math.max(0, tonumber(nxt[2]) - now) end
end
return reply
