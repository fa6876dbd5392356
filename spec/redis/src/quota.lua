-- quota: a counter per calendar period [S, S + Wms) computed by the caller (spec/saas/README.md). ARGV slots:
-- limit L, window_ms = period length, burst B = period start S (epoch ms), shaping '1' = refund.
-- State { blocked_until, period_start, period_end, used }.
local SIZE = 4
local S = B

local function init(t)
  return { 0, S, S + Wms, 0 }
end

-- Returns reason, remaining, reset_at_ms, retry_after_ms, delay_ms; updates s.
local function step(s, t, c)
  if S > s[2] or t >= s[3] then
    s[2] = S
    s[3] = S + Wms
    s[4] = 0
  end
  local e, used = s[3], s[4]
  local reason, retry = 0, 0
  if SHAPING then
    if s[2] == S then
      used = max(0, used - c)
      s[4] = used
    end
  elseif c > L then
    reason, retry = 3, Wms
  elseif used + c <= L + EPS then
    used = used + c
    s[4] = used
  else
    reason, retry = 1, e - t
  end
  return reason, max(0, floor(L - used + EPS)), e, retry, 0
end
