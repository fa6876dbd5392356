-- sliding_window: P sub-buckets of width b = Wms / P in a ring of P + 1 slots; bucket i lives in slot
-- i mod (P + 1), at Lua index 3 + (i mod (P + 1)). State { blocked_until, cur, n_0 .. n_P }.
local SIZE = P + 3
local N = P + 1
local b = Wms / P

local function init(t)
  local s = { 0, floor(t / b) }
  for j = 3, SIZE do s[j] = 0 end
  return s
end

-- Returns reason, remaining, reset_at_ms, retry_after_ms, delay_ms; updates s.
-- fmod(i, N), plus N when negative, is the mathematical modulo (exact, like JavaScript's %).
local function step(s, t, c)
  local cur = s[2]
  local k = floor(t / b)
  if k > cur then
    for i = cur + 1, min(k, cur + N) do
      local m = fmod(i, N)
      if m < 0 then m = m + N end
      s[3 + m] = 0
    end
    s[2] = k
  else
    k = cur
  end
  local used = 0
  for j = 3, SIZE do used = used + s[j] end
  local reason, remaining, retry = 0, 0, 0
  if c > L then
    reason, remaining, retry = 3, max(0, floor(L - used + EPS)), Wms
  elseif used + c <= L + EPS then
    local m = fmod(k, N)
    if m < 0 then m = m + N end
    s[3 + m] = s[3 + m] + c
    remaining = max(0, floor(L - used - c + EPS))
  else
    reason, remaining = 1, max(0, floor(L - used + EPS))
    local left = used
    local i = k - P
    while i <= k do
      local m = fmod(i, N)
      if m < 0 then m = m + N end
      left = left - s[3 + m]
      if left + c <= L + EPS then break end
      i = i + 1
    end
    retry = ceil((i + P + 1) * b - t)
  end
  -- reset_at: the newest non-empty bucket leaves the window at (i + P + 1) * b; t when all are empty.
  local reset = t
  for i = k, k - P, -1 do
    local m = fmod(i, N)
    if m < 0 then m = m + N end
    if s[3 + m] > 0 then
      reset = ceil((i + P + 1) * b)
      break
    end
  end
  return reason, remaining, reset, retry, 0
end
