// SHA-256 and HMAC-SHA-256 in plain JavaScript: synchronous, identical on Node, Edge and browsers (no Node built-ins).
// Used to keep raw API keys (and oversized identities) out of storage keys, logs and telemetry.

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74,
  0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
  0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
  0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
  0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
])
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
const W = new Uint32Array(64)
const encoder = new TextEncoder()

/** Compress one 64-byte block of `data` at `off` into `h`. */
function block(h: Uint32Array, data: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++) {
    const j = off + i * 4
    W[i] = (data[j]! << 24) | (data[j + 1]! << 16) | (data[j + 2]! << 8) | data[j + 3]!
  }
  for (let i = 16; i < 64; i++) {
    const a = W[i - 15]!
    const b = W[i - 2]!
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3)
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10)
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0
  }
  let a = h[0]!
  let b = h[1]!
  let c = h[2]!
  let d = h[3]!
  let e = h[4]!
  let f = h[5]!
  let g = h[6]!
  let k = h[7]!
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const ch = (e & f) ^ (~e & g)
    const t1 = (k + S1 + ch + K[i]! + W[i]!) | 0
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const maj = (a & b) ^ (a & c) ^ (b & c)
    const t2 = (S0 + maj) | 0
    k = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  h[0] = (h[0]! + a) | 0
  h[1] = (h[1]! + b) | 0
  h[2] = (h[2]! + c) | 0
  h[3] = (h[3]! + d) | 0
  h[4] = (h[4]! + e) | 0
  h[5] = (h[5]! + f) | 0
  h[6] = (h[6]! + g) | 0
  h[7] = (h[7]! + k) | 0
}

/** Finish a hash whose state `h` has absorbed `prefixLen` bytes already, over `msg`. */
function digest(h: Uint32Array, prefixLen: number, msg: Uint8Array): Uint8Array {
  const full = msg.length - (msg.length % 64)
  for (let off = 0; off < full; off += 64) block(h, msg, off)
  const rest = msg.length - full
  const tail = new Uint8Array(rest < 56 ? 64 : 128)
  tail.set(msg.subarray(full))
  tail[rest] = 0x80
  const bits = (prefixLen + msg.length) * 8
  const at = tail.length - 8
  const hi = Math.floor(bits / 0x100000000)
  tail[at] = hi >>> 24
  tail[at + 1] = hi >>> 16
  tail[at + 2] = hi >>> 8
  tail[at + 3] = hi
  tail[at + 4] = bits >>> 24
  tail[at + 5] = bits >>> 16
  tail[at + 6] = bits >>> 8
  tail[at + 7] = bits
  for (let off = 0; off < tail.length; off += 64) block(h, tail, off)
  const out = new Uint8Array(32)
  for (let i = 0; i < 8; i++) {
    out[i * 4] = h[i]! >>> 24
    out[i * 4 + 1] = h[i]! >>> 16
    out[i * 4 + 2] = h[i]! >>> 8
    out[i * 4 + 3] = h[i]!
  }
  return out
}

/** SHA-256 of bytes, or of a string's UTF-8. */
export function sha256(data: Uint8Array | string): Uint8Array {
  return digest(new Uint32Array(IV), 0, typeof data === 'string' ? encoder.encode(data) : data)
}

/** Lowercase hex of `bytes`, or of its first `n` bytes. */
export function toHex(bytes: Uint8Array, n = bytes.length): string {
  let s = ''
  for (let i = 0; i < n; i++) s += (bytes[i]! < 16 ? '0' : '') + bytes[i]!.toString(16)
  return s
}

/**
 * HMAC-SHA-256 with a fixed key: the inner and outer pads are absorbed once, so
 * each message costs two compressions when short.
 *
 * @example
 * new Hmac('a-long-random-secret').hex('sk_live_123', 16) // 32 hex characters
 */
export class Hmac {
  private readonly inner: Uint32Array
  private readonly outer: Uint32Array

  constructor(key: Uint8Array | string) {
    let k = typeof key === 'string' ? encoder.encode(key) : key
    if (k.length > 64) k = sha256(k)
    const pad = new Uint8Array(64)
    pad.set(k)
    for (let i = 0; i < 64; i++) pad[i]! ^= 0x36
    this.inner = new Uint32Array(IV)
    block(this.inner, pad, 0)
    for (let i = 0; i < 64; i++) pad[i]! ^= 0x36 ^ 0x5c
    this.outer = new Uint32Array(IV)
    block(this.outer, pad, 0)
  }

  /** The 32-byte MAC of bytes, or of a string's UTF-8. */
  mac(data: Uint8Array | string): Uint8Array {
    const inner = digest(new Uint32Array(this.inner), 64, typeof data === 'string' ? encoder.encode(data) : data)
    return digest(new Uint32Array(this.outer), 64, inner)
  }

  /** Hex of the MAC's first `bytes` bytes (default all 32). */
  hex(data: Uint8Array | string, bytes = 32): string {
    return toHex(this.mac(data), bytes)
  }
}

/** Random bytes from Web Crypto (`globalThis.crypto`, present on Node 20+, Edge, Deno, Bun, browsers). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n)
  globalThis.crypto.getRandomValues(out)
  return out
}
