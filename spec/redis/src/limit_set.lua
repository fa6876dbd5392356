-- Halt Redis script: a limit set (spec/README.md §4), several policies of one identity decided as one, atomically.
-- Built by spec/tools/build_redis.py from spec/redis/src/limit_set.lua and every algorithm's part (SIZE, init, step),
-- each wrapped in a function of the policy's numbers. Contract: spec/redis/README.md.
--
-- KEYS[1..k]  one state key per policy, in the set's order (one identity: on a cluster they share its hash slot)
-- ARGV[1]     now: milliseconds since the epoch, or '' for the server's clock (TIME)
-- ARGV[2]     expiry_grace_ms
-- ARGV[3 + 9 * (i - 1) ..]  for KEYS[i]: algorithm, limit, window_ms, burst, block_ms, precision, shaping ('1'/'0'),
--             shadow ('1'/'0'), cost (a number >= 0)
-- Returns     { now, allowed (1 or 0: the enforced policies admit), then per key: reason, remaining, reset_at_ms,
--             retry_after_ms, delay_ms, expires_at_ms }, numbers as in the single-policy scripts.
-- Stored      each key's state as in the single-policy scripts (the same keys and bytes: a policy shares its
--             counters with a limiter that checks it alone).

local EPS = 1e-9
local floor, ceil, min, max, fmod = math.floor, math.ceil, math.min, math.max, math.fmod
local tonumber, format, pack, unpack_struct, unpack = tonumber, string.format, struct.pack, struct.unpack, unpack
local rcall = redis.call

local now = tonumber(ARGV[1])
if ARGV[1] == '' then
  local t = rcall('TIME')
  now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
end
local GRACE_MS = tonumber(ARGV[2])
local k = #KEYS
if not (now and GRACE_MS) or k == 0 or #ARGV ~= 2 + 9 * k then
  return redis.error_reply('HALT_BAD_ARGUMENTS expected ARGV now, expiry_grace_ms, then per key algorithm, limit, window_ms, burst, block_ms, precision, shaping, shadow, cost')
end

local ALGORITHMS = {}
-- @algorithms

local MAX_SAFE = 9007199254740992

-- A reply number: an integer reply when it is a whole number below 2^53, else an exact string.
local function num(x)
  if x == floor(x) and x < MAX_SAFE and x > -MAX_SAFE then return x end
  return format('%.17g', x)
end

local function copy(s, size)
  local c = {}
  for j = 1, size do c[j] = s[j] end
  return c
end

-- The wrapper (spec §1) on state s (updated in place): reason, remaining, reset, retry, delay, expires, writes.
local function wrapped(p, s, c)
  local blocked_until = s[1]
  if now < blocked_until then
    local _, _, z, w = p.step(copy(s, p.size), now, c)
    local reset = max(blocked_until, z)
    return 2, 0, reset, max(blocked_until - now, w), 0, reset, false
  end
  local reason, remaining, reset, retry, delay = p.step(s, now, c)
  if reason == 1 and p.block_ms > 0 then
    s[1] = now + p.block_ms
    retry = max(retry, s[1] - now)
    reset = max(reset, s[1])
  end
  return reason, remaining, reset, retry, delay, max(reset, s[1]), true
end

local policies, states, steps = {}, {}, {}
local enforced, shadow_ok = true, true
for i = 1, k do
  local a = 2 + 9 * (i - 1)
  local make = ALGORITHMS[ARGV[a + 1]]
  local L, Wms, B, block_ms, P = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local c = tonumber(ARGV[a + 9])
  if not (make and L and Wms and B and block_ms and P) then
    return redis.error_reply('HALT_BAD_ARGUMENTS policy ' .. i .. ': unknown algorithm or a number that is not one')
  end
  if c == nil or c ~= c or c < 0 or c == math.huge then
    return redis.error_reply('HALT_BAD_COST cost must be a finite number >= 0, got ' .. tostring(ARGV[a + 9]))
  end
  local size, init, step = make(L, Wms, B, P, ARGV[a + 7] == '1')
  local p = { size = size, init = init, step = step, block_ms = block_ms, shadow = ARGV[a + 8] == '1', cost = c,
              fmt = '<' .. string.rep('d', size) }
  policies[i] = p
  local raw = rcall('GET', KEYS[i])
  local s = false
  if raw and #raw == 8 * size then
    s = { unpack_struct(p.fmt, raw) }
    s[size + 1] = nil
  end
  states[i] = s
  local work = s and copy(s, size) or init(now)
  local r = { wrapped(p, work, c) }
  r.state = work
  steps[i] = r
  if r[1] ~= 0 then
    if p.shadow then shadow_ok = false else enforced = false end
  end
end

local every = enforced and shadow_ok
local reply = { num(now), enforced and 1 or 0 }
for i = 1, k do
  local p, r = policies[i], steps[i]
  local kept = enforced
  if p.shadow then kept = every end
  if r[1] == 0 and not kept then
    -- Rolled back: nothing is written; the outcome is a peek of the state as it stands.
    local s = states[i] and copy(states[i], p.size) or p.init(now)
    r = { wrapped(p, s, 0) }
  elseif r[7] then
    local ttl = ceil(r[6] - now)
    if ttl < 1 then ttl = 1 end
    ttl = min(ttl + GRACE_MS, 1e13)
    rcall('SET', KEYS[i], pack(p.fmt, unpack(r.state)), 'PX', ttl)
  end
  local o = 6 * i - 3
  reply[o], reply[o + 1], reply[o + 2], reply[o + 3], reply[o + 4], reply[o + 5] = r[1], num(r[2]), num(r[3]), num(r[4]), num(r[5]), num(r[6])
end
return reply
