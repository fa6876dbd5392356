// Storage keys `<prefix><ns>:{<identity>}` (spec/KEYS.md): escaping, the Redis Cluster hash slot, SCAN patterns.

const TAG_CHARS = /[%{}]/
const TAG_CHARS_ALL = /[%{}]/g
const ENCODED: Record<string, string> = { '%': '%25', '{': '%7B', '}': '%7D' }

/**
 * Percent-encode `%`, `{` and `}` (and nothing else), so that the only `{` in a key is the one opening the
 * identity's hash tag and the tag always spans the whole identity. Injective: distinct inputs stay distinct.
 */
export function escapeKeyPart(s: string): string {
  return TAG_CHARS.test(s) ? s.replace(TAG_CHARS_ALL, (c) => ENCODED[c] as string) : s
}

/** The Redis key of one identity's state under a namespace (`<policy name>:<algorithm code>`). */
export function storageKey(prefix: string, ns: string, id: string): string {
  return `${prefix}${escapeKeyPart(ns)}:{${escapeKeyPart(id)}}`
}

/** A SCAN MATCH pattern for every key of `ns` (or of every namespace) under `prefix`. */
export function scanPattern(prefix: string, ns?: string): string {
  return ns === undefined ? `${globEscape(prefix)}*` : `${globEscape(`${prefix}${escapeKeyPart(ns)}`)}:{*`
}

/** Escape the characters Redis glob patterns treat specially. */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\^-]/g, (c) => `\\${c}`)
}

const CRC16_TABLE = (() => {
  const t = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i << 8
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff
    t[i] = c
  }
  return t
})()

/**
 * The Redis Cluster hash slot of a key: CRC16 (XMODEM) of the hash tag (the bytes between the first `{` and
 * the next `}`, when not empty) or of the whole key, modulo 16384.
 */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key, 'utf8')
  const open = bytes.indexOf(0x7b)
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1)
    if (close > open + 1) bytes = bytes.subarray(open + 1, close)
  }
  let crc = 0
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ (bytes[i] as number)) & 0xff] as number)
  return crc & 0x3fff
}
