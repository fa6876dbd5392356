// Forwarding headers: X-Forwarded-For style lists and RFC 7239 Forwarded, split into hop addresses without throwing.

/** Most hops read from a forwarding header (right to left); a longer chain of trusted hops is treated as malformed. */
export const MAX_HOPS = 32
/** Longest forwarding header parsed; longer values are malformed as a whole. */
export const MAX_FORWARDED_LENGTH = 16_384

/**
 * The address part of one hop of an X-Forwarded-For style list: strips
 * whitespace, a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`) and brackets.
 * Returns undefined when the hop is empty or not of that form (the caller then
 * tries to parse what is returned as an address, which may still fail).
 */
export function hopAddress(token: string): string | undefined {
  const t = token.trim()
  if (t.length === 0) return undefined
  if (t.charCodeAt(0) === 91) {
    // [v6] or [v6]:port
    const close = t.indexOf(']')
    if (close < 0) return undefined
    const rest = t.slice(close + 1)
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined
    return t.slice(1, close)
  }
  const colon = t.indexOf(':')
  if (colon >= 0 && t.indexOf(':', colon + 1) < 0) {
    // a.b.c.d:port (exactly one colon: IPv6 has at least two)
    if (!/^\d{1,5}$/.test(t.slice(colon + 1))) return undefined
    return t.slice(0, colon)
  }
  return t
}

/**
 * The `for=` node of each element of an RFC 7239 `Forwarded` value, left to
 * right, as a hop string for `hopAddress` (quotes removed); `undefined` for an
 * element that has no single `for=` or is not well formed. Returns undefined
 * when the whole value cannot be split (unbalanced quotes, too long).
 *
 * @example
 * forwardedNodes('for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"') // ['192.0.2.60', '[2001:db8::17]:4711']
 */
export function forwardedNodes(value: string): (string | undefined)[] | undefined {
  if (value.length > MAX_FORWARDED_LENGTH) return undefined
  const out: (string | undefined)[] = []
  let node: string | undefined
  let forCount = 0
  let bad = false
  let i = 0
  const n = value.length
  const endElement = () => {
    out.push(bad || forCount !== 1 ? undefined : node)
    node = undefined
    forCount = 0
    bad = false
  }
  while (i <= n) {
    // skip OWS
    while (i < n && (value.charCodeAt(i) === 32 || value.charCodeAt(i) === 9)) i++
    if (i === n) {
      endElement()
      break
    }
    const c = value.charCodeAt(i)
    if (c === 44) {
      endElement()
      i++
      continue
    }
    if (c === 59) {
      i++
      continue
    }
    // pair: token "=" (token | quoted-string)
    const eq = value.indexOf('=', i)
    if (eq < 0) return undefined
    const name = value.slice(i, eq).trim().toLowerCase()
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) bad = true
    i = eq + 1
    let v = ''
    if (value.charCodeAt(i) === 34) {
      i++
      let closed = false
      while (i < n) {
        const q = value.charCodeAt(i)
        if (q === 92 && i + 1 < n) {
          v += value[i + 1]
          i += 2
          continue
        }
        if (q === 34) {
          closed = true
          i++
          break
        }
        v += value[i]
        i++
      }
      if (!closed) return undefined
    } else {
      const start = i
      while (i < n) {
        const q = value.charCodeAt(i)
        if (q === 59 || q === 44 || q === 32 || q === 9) break
        i++
      }
      v = value.slice(start, i)
    }
    // After a value: OWS then ';', ',' or the end.
    while (i < n && (value.charCodeAt(i) === 32 || value.charCodeAt(i) === 9)) i++
    if (i < n && value.charCodeAt(i) !== 59 && value.charCodeAt(i) !== 44) bad = true
    if (name === 'for') {
      forCount++
      node = v
    }
    if (out.length > 4 * MAX_HOPS) return undefined
  }
  return out
}
