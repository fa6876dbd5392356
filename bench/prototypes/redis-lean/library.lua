-- PROTOTYPE (not the contract of spec/redis/README.md): the five algorithm scripts as one Redis Functions library,
-- with fewer arguments and a lean reply. Assembled by bench/redis-floor.mjs: `-- @algorithms` becomes each
-- spec/redis/src/<algorithm>.lua wrapped as FACTORIES[name] = function(L, Wms, B, P, SHAPING) ... end, and one
-- redis.register_function per algorithm is appended. Same wrapper and steps as spec/redis/src/common.lua.
--
-- FCALL <fn> n KEYS[1..n] ARGV: now ('' for TIME), rule = 'limit,window_ms,burst,block_ms,precision,shaping,grace',
--                             then one cost (or 'peek') per key
-- Reply  { now, then per key: 0, remaining, reset_at_ms           (allowed, no delay: retry 0, delay 0, expires = reset)
--                        or: code, remaining, reset_at_ms, retry_after_ms, delay_ms, expires_at_ms, state
--                            (code 1 limit, 2 cooldown, 3 cost_exceeds_capacity, 4 allowed with a delay; state 0 if allowed) }
--
-- What it saves over the EVAL scripts: the body, its closures and format strings are built once per rule string
-- (library state persists between calls) instead of on every call; 3 arguments instead of 9; 4 reply elements
-- instead of 8 for an admission. A library's load-time environment has no globals (Redis 7.0: not even math),
-- so they are bound on the first call.

local EPS = 1e-9
local MAX_SAFE = 9007199254740992
local floor, ceil, min, max, fmod, tonumber, format, pack, unpack_struct, unpack, rcall, huge, rep

local function bind()
  floor, ceil, min, max, fmod = math.floor, math.ceil, math.min, math.max, math.fmod
  tonumber, format, pack, unpack_struct, unpack = _G.tonumber, string.format, struct.pack, struct.unpack, _G.unpack
  rcall, huge, rep = redis.call, math.huge, string.rep
end

local function num(x)
  if x == floor(x) and x < MAX_SAFE and x > -MAX_SAFE then return x end
  return format('%.17g', x)
end

local FACTORIES = {}
-- @algorithms

-- A rule's numbers parsed once and its algorithm's closures built once, per distinct rule string (at most 1000).
local RULES, NRULES = {}, 0
local function rule_of(name, text)
  local cache = RULES[name]
  if cache == nil then
    cache = {}
    RULES[name] = cache
  end
  local rule = cache[text]
  if rule then return rule end
  local l, w, b, bl, p, sh, g = text:match('^([^,]+),([^,]+),([^,]+),([^,]+),([^,]+),([01]),([^,]+)$')
  local L, Wms, B, BLOCK_MS, P, GRACE_MS = tonumber(l), tonumber(w), tonumber(b), tonumber(bl), tonumber(p), tonumber(g)
  if not (L and Wms and B and BLOCK_MS and P and GRACE_MS) then return nil end
  local SIZE, init, step = FACTORIES[name](L, Wms, B, P, sh == '1')
  rule = { SIZE, init, step, '<' .. rep('d', SIZE), 8 * SIZE, BLOCK_MS, GRACE_MS }
  if NRULES >= 1000 then
    cache = {}
    RULES, NRULES = { [name] = cache }, 0
  end
  cache[text], NRULES = rule, NRULES + 1
  return rule
end

local function run(name, KEYS, ARGV)
  if not rcall then bind() end
  local a1 = ARGV[1]
  local now = tonumber(a1)
  if a1 == '' then
    local t = rcall('TIME')
    now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
  end
  local rule = rule_of(name, ARGV[2])
  if not (now and rule) or #ARGV ~= 2 + #KEYS then
    return redis.error_reply('HALT_BAD_ARGUMENTS expected ARGV now, rule, cost per key')
  end
  local SIZE, init, step, FMT, BYTES, BLOCK_MS, GRACE_MS = rule[1], rule[2], rule[3], rule[4], rule[5], rule[6], rule[7]
  local n = #KEYS
  local reply = { num(now) }
  local r = 2
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
        s = false
      end
      if states then states[key] = s end
    end
    local arg = ARGV[2 + i]
    local peek = arg == 'peek'
    local c = 0
    if not peek then
      c = tonumber(arg)
      if c == nil or c ~= c or c < 0 or c == huge then
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
    local reason, remaining, reset, retry, delay, expires
    local blocked_until = s[1]
    if now < blocked_until then
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
    -- Admitted without a delay: retry and delay are 0 and expires = reset (blocked_until <= now <= reset).
    if reason == 0 and delay == 0 then
      reply[r], reply[r + 1], reply[r + 2] = 0, num(remaining), num(reset)
      r = r + 3
    else
      reply[r], reply[r + 1], reply[r + 2], reply[r + 3] = reason == 0 and 4 or reason, num(remaining), num(reset), num(retry)
      reply[r + 4], reply[r + 5] = num(delay), num(expires)
      if reason == 0 then
        reply[r + 6] = 0
      else
        local state = {}
        for j = 1, SIZE do state[j] = num(s[j]) end
        reply[r + 6] = state
      end
      r = r + 7
    end
  end
  if written then
    for j = 1, #written do
      local key = written[j]
      rcall('SET', key, pack(FMT, unpack(states[key])), 'PX', ttls[key])
    end
  end
  return reply
end
