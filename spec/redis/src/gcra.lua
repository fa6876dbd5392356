-- gcra: one theoretical arrival time; T = Wms / L ms per unit, tau = B * T, slack S <= 1 µs (spec/README.md).
-- State { blocked_until, tat }.
local SIZE = 2
local T = Wms / L
local tau = B * T
local S = min(0.001, T * 0.001)

local function init(t)
  return { 0, t }
end

-- Returns reason, remaining, reset_at_ms, retry_after_ms, delay_ms; updates s.
local function step(s, t, c)
  local tat = s[2]
  -- A clock that stepped back: never read more than a full bucket ahead of t.
  local at = t
  if tat - tau > t then at = tat - tau end
  local base = at
  if tat > at then base = tat end
  -- left(x) = max(0, floor((tau - (x - at) + S) / T)): whole units left when the arrival time is x.
  if c > B then return 3, max(0, floor((tau - (base - at) + S) / T)), ceil(base), Wms, 0 end
  local new_tat = base + c * T
  if new_tat - at - tau <= S then
    s[2] = new_tat
    return 0, max(0, floor((tau - (new_tat - at) + S) / T)), ceil(new_tat), 0, 0
  end
  return 1, max(0, floor((tau - (base - at) + S) / T)), ceil(base), ceil(new_tat - tau - t - S), 0
end
