// IP addresses and CIDR ranges: strict parsing, canonical text (RFC 5952), prefix masks, range lists. No Node built-ins.

/**
 * A parsed address. IPv4 (and IPv4-mapped IPv6, `::ffff:a.b.c.d`) is version 4
 * with `v4` the unsigned 32-bit value; IPv6 is version 6 with its 16 bytes.
 */
export interface IpAddress {
  readonly version: 4 | 6
  readonly v4: number
  readonly v6: Uint8Array | undefined
}

/** A range `address/bits`, the address already masked to `bits`. */
export interface Cidr {
  readonly version: 4 | 6
  readonly bits: number
  readonly address: IpAddress
  /** Canonical text, e.g. `10.0.0.0/8`. */
  readonly text: string
}

const MAX_LEN = 100

/**
 * Parse an address strictly: dotted-quad IPv4 without leading zeros, or IPv6
 * (compressed, with an embedded IPv4 tail, with a zone id `%eth0` which is
 * dropped). IPv4-mapped IPv6 becomes IPv4. Anything else gives `undefined`.
 *
 * @example
 * parseIp('::ffff:203.0.113.7') // { version: 4, ... } (formats as '203.0.113.7')
 */
export function parseIp(s: string): IpAddress | undefined {
  if (typeof s !== 'string' || s.length === 0 || s.length > MAX_LEN) return undefined
  if (s.indexOf(':') < 0) {
    const v = parseV4(s, 0, s.length)
    return v < 0 ? undefined : { version: 4, v4: v, v6: undefined }
  }
  let end = s.length
  const pct = s.indexOf('%')
  if (pct >= 0) {
    if (!validZone(s, pct + 1)) return undefined
    end = pct
  }
  const bytes = parseV6(s, end)
  if (bytes === undefined) return undefined
  if (isMapped(bytes)) return { version: 4, v4: ((bytes[12]! << 24) | (bytes[13]! << 16) | (bytes[14]! << 8) | bytes[15]!) >>> 0, v6: undefined }
  return { version: 6, v4: 0, v6: bytes }
}

function validZone(s: string, from: number): boolean {
  const n = s.length - from
  if (n < 1 || n > 64) return false
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i)
    const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 46 || c === 95 || c === 126
    if (!ok) return false
  }
  return true
}

/** Dotted quad in `s[from, to)`: the value, or -1. */
function parseV4(s: string, from: number, to: number): number {
  let value = 0
  let parts = 0
  let i = from
  while (i <= to) {
    let n = 0
    let digits = 0
    const start = i
    while (i < to) {
      const c = s.charCodeAt(i)
      if (c < 48 || c > 57) break
      n = n * 10 + (c - 48)
      digits++
      i++
      if (digits > 3) return -1
    }
    if (digits === 0 || n > 255 || (digits > 1 && s.charCodeAt(start) === 48)) return -1
    value = value * 256 + n
    parts++
    if (i === to) break
    if (s.charCodeAt(i) !== 46 || parts === 4) return -1
    i++
  }
  return parts === 4 && i === to ? value : -1
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** IPv6 in `s[0, end)`: 16 bytes, or undefined. */
function parseV6(s: string, end: number): Uint8Array | undefined {
  const groups: number[] = []
  let gap = -1 // index in `groups` where '::' stands
  let i = 0
  if (end >= 2 && s.charCodeAt(0) === 58 && s.charCodeAt(1) === 58) {
    gap = 0
    i = 2
    if (i === end) return expand(groups, gap)
  } else if (s.charCodeAt(0) === 58) {
    return undefined
  }
  while (i < end) {
    // One group, or an IPv4 tail.
    let n = 0
    let digits = 0
    const start = i
    while (i < end) {
      const h = hexVal(s.charCodeAt(i))
      if (h < 0) break
      n = n * 16 + h
      digits++
      i++
      if (digits > 4) return undefined
    }
    if (i < end && s.charCodeAt(i) === 46) {
      // IPv4 tail: must end the address and fit in the last 32 bits.
      const v = parseV4(s, start, end)
      if (v < 0 || groups.length > 6) return undefined
      groups.push((v >>> 16) & 0xffff, v & 0xffff)
      i = end
      break
    }
    if (digits === 0) return undefined
    groups.push(n)
    if (groups.length > 8) return undefined
    if (i === end) break
    if (s.charCodeAt(i) !== 58) return undefined
    i++
    if (i < end && s.charCodeAt(i) === 58) {
      if (gap >= 0) return undefined
      gap = groups.length
      i++
      if (i === end) break
    } else if (i === end) {
      return undefined // trailing single ':'
    }
  }
  return expand(groups, gap)
}

function expand(groups: number[], gap: number): Uint8Array | undefined {
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return undefined
  const bytes = new Uint8Array(16)
  const tail = gap < 0 ? 0 : groups.length - gap
  for (let g = 0; g < groups.length; g++) {
    const at = gap >= 0 && g >= gap ? 8 - tail + (g - gap) : g
    bytes[at * 2] = groups[g]! >> 8
    bytes[at * 2 + 1] = groups[g]! & 0xff
  }
  return bytes
}

function isMapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false
  return b[10] === 0xff && b[11] === 0xff
}

/**
 * Canonical text: dotted quad for IPv4, RFC 5952 for IPv6 (lowercase, longest zero run as `::`).
 *
 * @example
 * formatIp(parseIp('2001:DB8:0:0:0:0:0:1')!) // '2001:db8::1'
 */
export function formatIp(a: IpAddress): string {
  if (a.version === 4) return `${a.v4 >>> 24}.${(a.v4 >>> 16) & 255}.${(a.v4 >>> 8) & 255}.${a.v4 & 255}`
  const b = a.v6 as Uint8Array
  const g: number[] = []
  for (let i = 0; i < 8; i++) g.push((b[i * 2]! << 8) | b[i * 2 + 1]!)
  let bestAt = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) {
      bestAt = i
      bestLen = j - i
    }
    i = j
  }
  if (bestAt < 0) return g.map((x) => x.toString(16)).join(':')
  const left = g
    .slice(0, bestAt)
    .map((x) => x.toString(16))
    .join(':')
  const right = g
    .slice(bestAt + bestLen)
    .map((x) => x.toString(16))
    .join(':')
  return `${left}::${right}`
}

/** The address with all but the first `bits` bits zeroed. */
export function maskIp(a: IpAddress, bits: number): IpAddress {
  if (a.version === 4) {
    const v = bits <= 0 ? 0 : bits >= 32 ? a.v4 : (a.v4 & ~(0xffffffff >>> bits)) >>> 0
    return { version: 4, v4: v, v6: undefined }
  }
  const src = a.v6 as Uint8Array
  const out = new Uint8Array(16)
  for (let i = 0; i < 16; i++) {
    const keep = bits - i * 8
    out[i] = keep >= 8 ? src[i]! : keep <= 0 ? 0 : src[i]! & (0xff << (8 - keep))
  }
  return { version: 6, v4: 0, v6: out }
}

/**
 * Parse `a.b.c.d/n`, `x::/n`, or a single address (a /32 or /128 range).
 * The address part is masked (`10.1.2.3/8` is `10.0.0.0/8`). Undefined if invalid.
 *
 * @example
 * parseCidr('10.1.2.3/8')?.text // '10.0.0.0/8'
 */
export function parseCidr(s: string): Cidr | undefined {
  if (typeof s !== 'string') return undefined
  const t = s.trim()
  const slash = t.indexOf('/')
  const a = parseIp(slash < 0 ? t : t.slice(0, slash))
  if (a === undefined) return undefined
  const max = a.version === 4 ? 32 : 128
  let bits = max
  if (slash >= 0) {
    const b = t.slice(slash + 1)
    if (!/^\d{1,3}$/.test(b)) return undefined
    bits = Number(b)
    // An IPv4-mapped range (::ffff:10.0.0.0/104) counts its bits in IPv6 terms.
    if (a.version === 4 && t.slice(0, slash).indexOf(':') >= 0) bits -= 96
    if (bits < 0 || bits > max) return undefined
  }
  const address = maskIp(a, bits)
  return { version: a.version, bits, address, text: `${formatIp(address)}/${bits}` }
}

/** Whether `a` lies in `c`. */
export function cidrContains(c: Cidr, a: IpAddress): boolean {
  if (c.version !== a.version) return false
  if (a.version === 4) {
    if (c.bits === 0) return true
    const mask = c.bits >= 32 ? 0xffffffff : ~(0xffffffff >>> c.bits)
    return (a.v4 & mask) >>> 0 === c.address.v4
  }
  const x = a.v6 as Uint8Array
  const y = c.address.v6 as Uint8Array
  for (let i = 0; i < 16; i++) {
    const keep = c.bits - i * 8
    if (keep <= 0) return true
    const m = keep >= 8 ? 0xff : (0xff << (8 - keep)) & 0xff
    if ((x[i]! & m) !== y[i]) return false
  }
  return true
}

/** Whether `a` lies in any range of `list`. */
export function inRanges(list: readonly Cidr[], a: IpAddress): boolean {
  for (let i = 0; i < list.length; i++) if (cidrContains(list[i]!, a)) return true
  return false
}

/** Loopback ranges: `127.0.0.0/8`, `::1/128`. */
export const LOOPBACK_RANGES: readonly string[] = Object.freeze(['127.0.0.0/8', '::1/128'])
/** Private and loopback ranges exempt by default (`exemptPrivateIps`). */
export const PRIVATE_RANGES: readonly string[] = Object.freeze(['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '::1/128', 'fc00::/7'])

export const PRIVATE_CIDRS: readonly Cidr[] = PRIVATE_RANGES.map((r) => parseCidr(r) as Cidr)
