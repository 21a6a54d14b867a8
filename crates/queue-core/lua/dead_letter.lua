-- Adds a dead letter once per (job, run): a second call for the same pair (a
-- pipeline sent again after a script reload, or the reconciler re-sending what a
-- completer already sent) changes nothing.
-- KEYS[1] dead-letter stream  KEYS[2] zset of the pairs added (score = time added, s)
-- ARGV[1] "<job id>:<run>"  ARGV[2] entries kept (both keys are trimmed to about it)
-- ARGV[3..] the entry's field/value pairs
-- Returns: 1 when added, 0 when the pair was already there.
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local keep = tonumber(ARGV[2])
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', keep, '*', unpack(fields))
redis.call('ZADD', KEYS[2], tonumber(redis.call('TIME')[1]), ARGV[1])
if redis.call('ZCARD', KEYS[2]) > keep then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -keep - 1)
end
return 1
