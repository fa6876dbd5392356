// renderSvg(): well-formed XML, one lane per policy, deterministic, and it draws what the numbers say.
import { XMLParser, XMLValidator } from 'fast-xml-parser'
import { describe, expect, it } from 'vitest'
import { generateTrace, renderSvg, simulate, type TraceRequest } from '../../src/simulate/index.js'

type Node = Record<string, unknown>
const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => ['g', 'path', 'text', 'line', 'rect'].includes(name) })

function parse(svg: string): Node {
  const valid = XMLValidator.validate(svg)
  expect(valid, JSON.stringify(valid)).toBe(true)
  return (parser.parse(svg) as { svg: Node }).svg
}

const lanes = (svg: Node) => (svg.g as Node[]).filter((g) => g.class === 'lane')
const texts = (node: Node) => ((node.text as unknown[]) ?? []).map((t) => (typeof t === 'object' ? String((t as Node)['#text']) : String(t)))
const paths = (node: Node, cls: string) => ((node.path as Node[]) ?? []).filter((p) => p.class === cls)

/** Heights of the bars of a path made of `M x y h w v -height h -w z` rectangles. */
function barHeights(d: string): number[] {
  return [...d.matchAll(/v(-?[\d.]+)h/g)].map((m) => -Number(m[1]))
}

const boundary: TraceRequest[] = Array.from({ length: 20 }, (_, i) => ({ t: (50 + i) * 1000 }))

describe('renderSvg', () => {
  it('is well-formed XML with one lane per policy, each named with its parameters', () => {
    const r = simulate(['fixed_window:10/1m', 'sliding_window:10/1m', 'gcra:10/1m,burst=5', 'leaky_bucket:10/1m,shaping'], boundary)
    const svg = parse(r.svg)
    expect(svg).toMatchObject({ xmlns: 'http://www.w3.org/2000/svg', role: 'img' })
    const ls = lanes(svg)
    expect(ls.map((l) => l['data-policy'])).toEqual(['fixed_window 10/1m', 'sliding_window 10/1m', 'gcra 10/1m burst=5', 'leaky_bucket 10/1m shaping'])
    for (const l of ls) expect(texts(l)[0]).toBe(l['data-policy'])
  })

  it('stacks admitted under rejected bars: the heights match the admissions, lane by lane', () => {
    // 1 s bins, one request each: the fixed window admits all 20 (20 full blue bars, no red);
    // the sliding window admits the first 10 (10 blue bars, then 10 red ones).
    const r = simulate(['fixed_window:10/1m', 'sliding_window:10/1m'], boundary)
    const [fixed, sliding] = lanes(parse(r.svg))
    const full = barHeights(paths(fixed as Node, 'admitted')[0]?.d as string)
    expect(full).toHaveLength(20)
    expect(new Set(full).size).toBe(1) // every bin holds one request: the same full height
    expect(paths(fixed as Node, 'rejected')).toEqual([])
    expect(barHeights(paths(sliding as Node, 'admitted')[0]?.d as string)).toHaveLength(10)
    expect(barHeights(paths(sliding as Node, 'rejected')[0]?.d as string)).toEqual(full.slice(10))
  })

  it('draws the trailing-window line up to the peak, against the limit, and says both', () => {
    const r = simulate(['fixed_window:10/1m', 'sliding_window:10/1m'], boundary)
    const [fixed, sliding] = lanes(parse(r.svg)).map((l) => {
      const ys = [...String(paths(l, 'window')[0]?.d).matchAll(/V([\d.]+)/g)].map((m) => Number(m[1]))
      const limitY = Number(/M[\d.]+ ([\d.]+)H/.exec(String(paths(l, 'limit')[0]?.d))?.[1])
      return { top: Math.min(...ys), limitY, base: Math.max(...ys), text: texts(l).join('\n') }
    })
    expect(fixed?.text).toContain('admitted in the last 1m: peak 20')
    expect(fixed?.text).toContain('limit 10')
    expect(fixed?.text).toContain('peak 20 per 1m, 2x the limit')
    // Heights above the base: the fixed window's peak is twice its limit; the sliding window's reaches it.
    const f = fixed as { top: number; limitY: number; base: number }
    const s = sliding as { top: number; limitY: number; base: number }
    expect((f.base - f.top) / (f.base - f.limitY)).toBeCloseTo(2, 1)
    expect(s.top).toBeCloseTo(s.limitY, 0)
  })

  it('draws the delays of a shaping leaky bucket instead', () => {
    const r = simulate(['leaky_bucket:10/1m,shaping'], boundary)
    const [lane] = lanes(parse(r.svg))
    expect(paths(lane as Node, 'delay')).toHaveLength(1)
    expect(paths(lane as Node, 'window')).toEqual([])
    expect(texts(lane as Node).join('\n')).toContain('delay asked of admitted requests: longest 54s')
  })

  it('marks fixed-window boundaries, and has a legend and a time axis', () => {
    const r = simulate(['fixed_window:10/1m'], boundary)
    const svg = parse(r.svg)
    // The chart spans 0 to 70 s (relative time starts at 0; steps of 10 s): one boundary, at 1m.
    expect(r.trace).toMatchObject({ from: 0, to: 70_000 })
    expect(paths(lanes(svg)[0] as Node, 'boundary')[0]?.d).toMatch(/^M[\d.]+ [\d.]+V[\d.]+$/)
    const legend = (svg.g as Node[]).find((g) => g.class === 'legend') as Node
    expect((legend.g as Node[]).flatMap((g) => texts(g))).toEqual(['admitted', 'rejected', 'admitted in the trailing window', 'limit', 'fixed window boundary'])
    expect(texts(svg)).toEqual(expect.arrayContaining(['0', '10s', '1m', '1m10s', 'time since the start of the trace']))
  })

  it('is deterministic: the same input gives the same bytes', () => {
    const trace = generateTrace({ pattern: 'abusive', seed: 3, duration: '2m', rate: '1/s' })
    const a = simulate(['token_bucket:30/1m,burst=10', 'sliding_window:30/1m'], trace).svg
    const b = simulate(['token_bucket:30/1m,burst=10', 'sliding_window:30/1m'], structuredClone(trace)).svg
    expect(b).toBe(a)
    expect(renderSvg(simulate(['sliding_window:30/1m'], trace, { chart: false }))).toBe(renderSvg(simulate(['sliding_window:30/1m'], trace, { chart: false })))
  })

  it('names the busiest key when there are several', () => {
    // Clients at 12 a minute stay under the limit of 30; the abuser sends 120.
    const trace = generateTrace({ pattern: 'abusive', seed: 3, duration: '2m', rate: '0.2/s' })
    const svg = parse(simulate(['token_bucket:30/1m,burst=10'], trace).svg)
    expect(texts(lanes(svg)[0] as Node).join('\n')).toMatch(/admitted in the last 1m \(key abuser\): peak \d+/)
  })

  it('escapes names and keys, and copes with an empty trace and a custom width', () => {
    const r = simulate([{ name: '<b>&"api"', limit: 1, window: 1 }], [{ t: 0, key: '<script>' }], { chart: { title: 'a & b', width: 600 } })
    const svg = parse(r.svg)
    expect(svg).toMatchObject({ width: '600' })
    expect(r.svg).toContain('data-policy="&lt;b&gt;&amp;&quot;api&quot;: token_bucket 1/s"')
    expect(lanes(svg)[0]?.['data-policy']).toBe('<b>&"api": token_bucket 1/s') // the parser decodes it back
    const empty = parse(simulate(['gcra:1/s'], []).svg)
    expect(lanes(empty)).toHaveLength(1)
  })
})
