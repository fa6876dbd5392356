-- penalty: an abuse score decaying at B points per hour; reaching L starts a penalty of Wms, doubled per repeat
-- offence, at most P ms (spec/saas/README.md). ARGV slots: limit L = threshold, window_ms = first penalty,
-- burst B = decay rate (points per hour), precision P = longest penalty (ms).
-- State { blocked_until, score, last_ms, penalty_until, offences }. Reply: always allowed; remaining = offences,
-- retry_after_ms = ms left of the penalty, delay_ms = score, reset_at_ms = when forgiven.
local SIZE = 5
local HOUR_MS = 3600000

local function init(t)
  return { 0, 0, t, 0, 0 }
end

local function forgiven_at(score, last, u)
  local zero = last
  if score > 0 then zero = last + ceil(score * HOUR_MS / B) end
  if zero > u then return zero end
  return u
end

local function step(s, t, c)
  local score, last, u, n = s[2], s[3], s[4], s[5]
  if t > last then
    score = score - (t - last) * B / HOUR_MS
    if score < EPS then score = 0 end
    s[2] = score
    s[3] = t
  end
  if score == 0 and t >= u then
    u, n = 0, 0
    s[4], s[5] = 0, 0
  end
  if c > 0 then
    score = score + c
    s[2] = score
    if t >= u and score + EPS >= L then
      n = n + 1
      u = t + min(P, Wms * 2 ^ min(n - 1, 52))
      s[4], s[5] = u, n
    end
  end
  local retry = 0
  if u > t then retry = u - t end
  return 0, n, forgiven_at(score, s[3], u), retry, score
end
