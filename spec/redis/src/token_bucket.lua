-- token_bucket: capacity B, continuous refill of r = L / Wms. State { blocked_until, tokens, last_ms }.
local SIZE = 3
local r = L / Wms

local function init(t)
  return { 0, B, t }
end

-- Returns reason, remaining, reset_at_ms, retry_after_ms, delay_ms; updates s.
local function step(s, t, c)
  local tokens, last = s[2], s[3]
  -- min() also when no time passed: a state saved under a larger burst (the policy was changed) holds at most B.
  if t > last then
    tokens = min(B, tokens + (t - last) * r)
    last = t
    s[3] = t
  else
    tokens = min(B, tokens)
  end
  s[2] = tokens
  -- A clock that stepped back: refill resumes only at last_ms.
  local wait = 0
  if last > t then wait = last - t end
  local reason, retry = 0, 0
  if c > B then
    reason, retry = 3, Wms
  elseif tokens + EPS >= c then
    tokens = max(0, tokens - c)
    s[2] = tokens
  else
    reason, retry = 1, wait + ceil((c - tokens - EPS) / r)
  end
  local reset = last
  if tokens + EPS < B then reset = last + ceil((B - tokens - EPS) / r) end
  return reason, floor(tokens + EPS), reset, retry, 0
end
