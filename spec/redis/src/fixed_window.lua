-- fixed_window: a counter per aligned window of Wms. State { blocked_until, window_start, count }.
local SIZE = 3

local function init(t)
  return { 0, floor(t / Wms) * Wms, 0 }
end

-- Returns reason, remaining, reset_at_ms, retry_after_ms, delay_ms; updates s.
local function step(s, t, c)
  local ws = floor(t / Wms) * Wms
  local start, count = s[2], s[3]
  if ws > start then
    start = ws
    count = 0
    s[2] = start
    s[3] = 0
  end
  local reason, retry = 0, 0
  if c > L then
    reason, retry = 3, Wms
  elseif count + c <= L + EPS then
    count = count + c
    s[3] = count
  else
    reason, retry = 1, start + Wms - t
  end
  return reason, max(0, floor(L - count + EPS)), start + Wms, retry, 0
end
