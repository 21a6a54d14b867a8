-- Shared per-provider budgets of requests and tokens per window, as a sliding-window
-- counter: the previous window's count weighs in by the share of it still inside the
-- last window length, so a burst at a window boundary cannot double the rate. O(1).
-- KEYS[1] the provider's hash (fields w = window number, r/t = requests/tokens in it,
--         pr/pt = the same for the window before)
-- ARGV[1] 'acquire' | 'tokens'   ARGV[2] window length ms
-- ARGV[3] acquire: max requests per window | tokens: tokens to add
-- ARGV[4] acquire: max tokens per window
-- Returns: acquire → 0 when the request is admitted (and counted), else ms to wait;
--          tokens → 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local win = tonumber(ARGV[2])
local n = math.floor(now / win)
local elapsed = now - n * win

local h = redis.call('HMGET', KEYS[1], 'w', 'r', 't', 'pr', 'pt')
local w = tonumber(h[1]) or n
local r, tk = tonumber(h[2]) or 0, tonumber(h[3]) or 0
local pr, pt = tonumber(h[4]) or 0, tonumber(h[5]) or 0
if w < n then
  if w == n - 1 then pr, pt = r, tk else pr, pt = 0, 0 end
  r, tk = 0, 0
end

local function save()
  redis.call('HSET', KEYS[1], 'w', n, 'r', r, 't', tk, 'pr', pr, 'pt', pt)
  redis.call('PEXPIRE', KEYS[1], 2 * win)
end

if ARGV[1] == 'tokens' then
  tk = tk + tonumber(ARGV[3])
  save()
  return 0
end

local max_r, max_t = tonumber(ARGV[3]), tonumber(ARGV[4])
local weight = (win - elapsed) / win
if pr * weight + r + 1 <= max_r and pt * weight + tk < max_t then
  r = r + 1
  save()
  return 0
end

-- Not admitted: how long until the estimate has room (at most until the window ends;
-- the caller asks again then).
local to_end = win - elapsed
local wait = 1
if r + 1 > max_r then
  wait = to_end
elseif pr * weight + r + 1 > max_r then
  wait = math.max(wait, math.ceil(win * (1 - (max_r - r - 1) / pr)) - elapsed)
end
if tk >= max_t then
  wait = to_end
elseif pt * weight + tk >= max_t then
  wait = math.max(wait, math.floor(win * (1 - (max_t - tk) / pt)) - elapsed + 1)
end
return math.max(1, math.min(wait, to_end))
