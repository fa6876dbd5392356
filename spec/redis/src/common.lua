-- Halt Redis script: one algorithm of spec/README.md with the common wrapper (cooldown, block, expiry), run on
-- a batch of keys. Built by spec/tools/build_redis.py from spec/redis/src/common.lua (arguments, state I/O,
-- wrapper, loop) and the algorithm's part (SIZE, init, step). Contract: spec/redis/README.md.
--
-- KEYS[1..n]  state keys (on a cluster: all in one hash slot)
-- ARGV[1]     now: milliseconds since the epoch, or '' for the server's clock (TIME)
-- ARGV[2..8]  limit, window_ms, burst, block_ms, precision, shaping ('1' or '0'), expiry_grace_ms
-- ARGV[8+i]   for KEYS[i]: the cost to consume (a number >= 0), or 'peek'
-- Returns     { now, then per key: reason, remaining, reset_at_ms, retry_after_ms, delay_ms, expires_at_ms, state }
--             reason 0 allowed, 1 limit, 2 cooldown, 3 cost_exceeds_capacity; state 0 when allowed, else the
--             key's state after the step (an array). A number is an integer reply when it is a whole number
--             below 2^53, else a string of 17 significant digits (Redis would truncate a fractional Lua number).
-- Stored      a key's state as SIZE little-endian IEEE-754 doubles (8 * SIZE bytes), PX = expiry + grace.

local EPS = 1e-9
local floor, ceil, min, max, fmod = math.floor, math.ceil, math.min, math.max, math.fmod
local tonumber, format, pack, unpack_struct, unpack = tonumber, string.format, struct.pack, struct.unpack, unpack
local rcall = redis.call

local now = tonumber(ARGV[1])
if ARGV[1] == '' then
  local t = rcall('TIME')
  now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
end
local L = tonumber(ARGV[2])
local Wms = tonumber(ARGV[3])
local B = tonumber(ARGV[4])
local BLOCK_MS = tonumber(ARGV[5])
local P = tonumber(ARGV[6])
local SHAPING = ARGV[7] == '1'
local GRACE_MS = tonumber(ARGV[8])
if not (now and L and Wms and B and BLOCK_MS and P and GRACE_MS) or #ARGV ~= 8 + #KEYS then
  return redis.error_reply('HALT_BAD_ARGUMENTS expected ARGV now, limit, window_ms, burst, block_ms, precision, shaping, expiry_grace_ms, cost per key')
end

-- @algorithm

local FMT = '<' .. string.rep('d', SIZE)
local BYTES = 8 * SIZE
local MAX_SAFE = 9007199254740992

-- A reply number: an integer reply when it is a whole number below 2^53, else an exact string.
local function num(x)
  if x == floor(x) and x < MAX_SAFE and x > -MAX_SAFE then return x end
  return format('%.17g', x)
end

local n = #KEYS
local reply = { num(now) }
-- With several keys, a key may repeat: its state carries from one check to the next and is written once.
local states, ttls, written
if n > 1 then states, ttls, written = {}, {}, {} end
for i = 1, n do
  local key = KEYS[i]
  local s = states and states[key]
  if s == nil then
    local raw = rcall('GET', key)
    if raw and #raw == BYTES then
      s = { unpack_struct(FMT, raw) }
      s[SIZE + 1] = nil
    else
      s = false -- missing, unreadable, or another layout: init replaces it
    end
    if states then states[key] = s end
  end
  local arg = ARGV[8 + i]
  local peek = arg == 'peek'
  local c = 0
  if not peek then
    c = tonumber(arg)
    if c == nil or c ~= c or c < 0 or c == math.huge then
      return redis.error_reply('HALT_BAD_COST cost must be a finite number >= 0 or peek, got ' .. tostring(arg))
    end
  end
  if not s then
    s = init(now)
    if states and not peek then states[key] = s end
  elseif peek then
    local copy = {}
    for j = 1, SIZE do copy[j] = s[j] end
    s = copy
  end
  -- The wrapper (spec §1).
  local reason, remaining, reset, retry, delay, expires
  local blocked_until = s[1]
  if now < blocked_until then
    -- Cooldown: nothing is written; the step on a copy says when the algorithm itself would admit.
    local copy = {}
    for j = 1, SIZE do copy[j] = s[j] end
    local _, _, z, w = step(copy, now, c)
    reason, remaining, reset, retry, delay = 2, 0, max(blocked_until, z), max(blocked_until - now, w), 0
    expires = reset
  else
    reason, remaining, reset, retry, delay = step(s, now, c)
    if reason == 1 and BLOCK_MS > 0 then
      s[1] = now + BLOCK_MS
      retry = max(retry, s[1] - now)
      reset = max(reset, s[1])
    end
    expires = max(reset, s[1])
    if not peek then
      local ttl = ceil(expires - now)
      if ttl < 1 then ttl = 1 end
      ttl = min(ttl + GRACE_MS, 1e13)
      if not states then
        rcall('SET', key, pack(FMT, unpack(s)), 'PX', ttl)
      else
        if ttls[key] == nil then written[#written + 1] = key end
        ttls[key] = ttl
      end
    end
  end
  local r = 7 * i - 5
  reply[r], reply[r + 1], reply[r + 2], reply[r + 3] = reason, num(remaining), num(reset), num(retry)
  reply[r + 4], reply[r + 5] = num(delay), num(expires)
  if reason == 0 then
    reply[r + 6] = 0
  else
    -- A rejection also returns the state (the blocked-key cache of an SDK runs the algorithm on it).
    local state = {}
    for j = 1, SIZE do state[j] = num(s[j]) end
    reply[r + 6] = state
  end
end
if written then
  for j = 1, #written do
    local key = written[j]
    rcall('SET', key, pack(FMT, unpack(states[key])), 'PX', ttls[key])
  end
end
return reply
