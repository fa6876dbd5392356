-- leaky_bucket: a queue of capacity B draining at r = L / Wms; meter mode rejects when full, shaping mode
-- also returns how long to wait. State { blocked_until, level, last_ms }.
local SIZE = 3
local r = L / Wms

local function init(t)
  return { 0, 0, t }
end

-- Returns reason, remaining, reset_at_ms, retry_after_ms, delay_ms; updates s.
-- drained(x) = 0 if x <= EPS, else ceil((x - EPS) / r): ms until x units have drained.
local function step(s, t, c)
  local level, last = s[2], s[3]
  if t > last then
    level = max(0, level - (t - last) * r)
    last = t
    s[2] = level
    s[3] = t
  end
  -- A clock that stepped back: draining resumes only at last_ms.
  local wait = 0
  if last > t then wait = last - t end
  local reason, retry, delay = 0, 0, 0
  if c > B then
    reason, retry = 3, Wms
  elseif level + c <= B + EPS then
    if SHAPING and level > EPS then delay = wait + ceil((level - EPS) / r) elseif SHAPING then delay = wait end
    level = level + c
    s[2] = level
  else
    reason, retry = 1, wait + ceil((level + c - B - EPS) / r)
  end
  local reset = last
  if level > EPS then reset = last + ceil((level - EPS) / r) end
  return reason, max(0, floor(B - level + EPS)), reset, retry, delay
end
