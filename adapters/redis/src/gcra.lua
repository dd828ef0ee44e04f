-- The generic cell rate algorithm for one key, atomically (Redis runs a script alone).
-- The whole state of a key is its theoretical arrival time (TAT), in microseconds since
-- the Unix epoch, stored with an expiry at that time: a key whose TAT has passed is the
-- same as a key never seen, so Redis may forget it.
--
-- KEYS[1]  the key
-- ARGV[1]  emission interval in microseconds (window / limit)
-- ARGV[2]  window in microseconds (the burst: how far the TAT may run ahead of now)
-- ARGV[3]  cost, in requests (already clamped to 1..limit by the caller)
-- ARGV[4]  now in microseconds, or "" for the server's clock (one clock for every replica)
--
-- Returns {1, 0} when allowed (the TAT stored), {0, retry_after_us} when refused (nothing
-- stored). Microseconds since the epoch stay exact in Lua's doubles (below 2^53).
local now
if ARGV[4] ~= "" then
  now = tonumber(ARGV[4])
else
  local time = redis.call("TIME")
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then
  tat = now
end
local next_tat = tat + interval * cost
local allow_at = next_tat - window
if now >= allow_at then
  local ttl_ms = math.ceil((next_tat - now) / 1000)
  if ttl_ms < 1 then
    ttl_ms = 1
  end
  redis.call("SET", KEYS[1], string.format("%.0f", next_tat), "PX", ttl_ms)
  return { 1, 0 }
end
return { 0, allow_at - now }
