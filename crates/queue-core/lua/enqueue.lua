-- Pushes job ids into a queue: due ones into the ready set, future ones into the
-- delayed set; wakes one blocked worker. NX: an id pushed again (the reconciler
-- re-pushing) keeps its place.
-- KEYS[1] ready (zset)  KEYS[2] delayed (zset)  KEYS[3] seq (counter)  KEYS[4] marker (zset)
-- ARGV: triples of (job id, priority, run-at in ms since the epoch; 0 = now)
-- Returns: the number of ids pushed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local band = 1099511627776 -- 2^40: the sequence fits below one priority band
local n = 0
for i = 1, #ARGV, 3 do
  local id, prio, run_at = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if run_at > now then
    redis.call('ZADD', KEYS[2], 'NX', run_at, prio .. '|' .. id)
  else
    local seq = redis.call('INCR', KEYS[3])
    redis.call('ZADD', KEYS[1], 'NX', (1000 - prio) * band + seq, id)
  end
  n = n + 1
end
if n > 0 then redis.call('ZADD', KEYS[4], 0, '0') end
return n
