// Generators of hostile HTTP input, shared by the in-process tests (test/http/hostile.test.ts) and the
// over-the-wire run through every adapter (test/adapters/contract.ts).
import fc from 'fast-check'
import { HEALTH_CHECK_PATHS } from '../../src/index.js'

export const FRAGMENTS = [
  '1.2.3.4',
  '10.0.0.1',
  '127.0.0.1',
  '192.168.1.1',
  '::1',
  '::ffff:10.0.0.1',
  '::ffff:127.0.0.1',
  'fe80::1%eth0',
  'fd00::1%25lo',
  '[::1]:80',
  '[fc00::1]',
  '10.0.0.1:8080',
  'unknown',
  '_hidden',
  'for=',
  'for=10.0.0.1',
  'For="[::1]:80"',
  'by=10.0.0.2',
  'proto=https',
  '"',
  '\\"',
  ';',
  ',',
  ', ',
  ' ',
  '\t',
  '%',
  '%25',
  '..',
  '/',
  '\\',
  '\u0000',
  '\r\n',
  '\uffff',
  'é',
  '🦄',
  '2001:db8::1',
  '999.1.1.1',
  '1.2.3.4:99999',
  '[',
  ']',
  '010.0.0.1',
  '0x7f.1',
  '::',
  ':::',
]
export const fragment = fc.constantFrom(...FRAGMENTS)
export const hostile = fc.oneof(
  { weight: 3, arbitrary: fc.array(fragment, { maxLength: 40 }).map((xs) => xs.join('')) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      ','.repeat(5000),
      '1.2.3.4, '.repeat(3000),
      'for=1.2.3.4,'.repeat(3000),
      `"${'a'.repeat(20000)}`,
      '10.0.0.1,'.repeat(40),
    ),
  },
)

export const publicV4 = fc
  .tuple(
    fc.constantFrom(8, 23, 45, 81, 151, 198, 203, 212),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 1, max: 254 }),
  )
  .filter(([a, b]) => !(a === 198 && (b === 18 || b === 19)))
  .map((p) => p.join('.'))
export const publicV6 = fc
  .tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }))
  .map(([a, b]) => `2001:db8:${a.toString(16)}::${b.toString(16)}`)
export const publicIp = fc.oneof(publicV4, publicV6)
export const anyPeer = fc.oneof(
  publicIp,
  fc.constantFrom('127.0.0.1', '::1', '10.1.1.1', '::ffff:192.168.0.9', 'fe80::1%eth0'),
  hostile,
  fc.constant(undefined),
)

/** Variants of exempt paths an attacker might try: case, escapes, dot segments, parameters, doubled and back slashes, unicode. */
export const trickPath = fc
  .tuple(
    fc.constantFrom(...HEALTH_CHECK_PATHS, '/internal/jobs', '/admin'),
    fc.array(
      fc.constantFrom(
        (p: string) => p.toUpperCase(),
        (p: string) => p.replace('h', 'H'),
        (p: string) => `${p};x`,
        (p: string) => `${p}/..`,
        (p: string) => `${p}/../admin`,
        (p: string) => `/admin/..${p}`,
        (p: string) => `/.${p}`,
        (p: string) => `/${p}`,
        (p: string) => `${p}//`,
        (p: string) => p.replace('/', '\\'),
        (p: string) => p.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`),
        (p: string) => `${p}%2F..%2Fadmin`,
        (p: string) => `${p}%00`,
        (p: string) => `${p}\u0000`,
        (p: string) => `${p}\u200b`,
        (p: string) => p.replace('e', 'е'), // Cyrillic e
        (p: string) => `${p}?x=/health`,
        (p: string) => `${p}#/health`,
        (p: string) => `${p}/`,
        (p: string) => `${p}x`,
        (p: string) => `http://evil${p}`,
      ),
      { maxLength: 4 },
    ),
  )
  .map(([base, ops]) => ops.reduce((p, op) => op(p), base))

export const EXACT = new Set([...HEALTH_CHECK_PATHS, ...HEALTH_CHECK_PATHS.map((p) => `${p}/`)])

export const header = fc.dictionary(
  fc.constantFrom('x-forwarded-for', 'forwarded', 'x-real-ip', 'x-api-key', 'authorization', 'x-user'),
  fc.oneof(hostile, fc.array(hostile, { maxLength: 4 }), fc.constant(`Bearer ${'k'.repeat(70_000)}`)),
)
