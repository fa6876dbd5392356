// renderSvg(): a simulation as a self-contained, deterministic SVG chart, one lane per policy on one time axis.
import { count, fixed, formatDuration, formatOffset, formatWindow, niceStep } from './format.js'
import type { PolicyRun, SimulationResult } from './run.js'
import { SECONDS_BELOW } from './trace.js'

export interface ChartOptions {
  /** Width in px (height follows from the number of policies). Default 960. */
  width?: number
  /** First line of the chart. Default: the trace's name. */
  title?: string
}

const COLORS = {
  admitted: '#0072B2',
  rejected: '#D55E00',
  window: '#009E73',
  delay: '#CC79A7',
  limit: '#222222',
  grid: '#E6E6E6',
  text: '#222222',
  muted: '#5A5A5A',
  boundary: '#444444',
}
const FONT = 'system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, DejaVu Sans, sans-serif'

const PAD_LEFT = 56
const PAD_RIGHT = 24
const TOP = 84
const HEADER = 40
const BARS = 72
const GAP = 8
const BAND = 44
const LANE_GAP = 14
const LANE = HEADER + BARS + GAP + BAND + LANE_GAP
const AXIS = 44

/** A coordinate with one decimal, the same string on every machine. */
function n(x: number): string {
  const r = Math.round(x * 10) / 10
  return String(r === 0 ? 0 : r)
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')
}

/** A rough text width (px) for laying out the legend; no font metrics are available here. */
function textWidth(s: string, size: number): number {
  return s.length * size * 0.52
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${n(x)}" y="${n(y)}"${attrs ? ` ${attrs}` : ''}>${esc(s)}</text>`
}

/**
 * Draw a simulation: for each policy a lane with its name and numbers, a bar per time bin
 * (admitted below in blue, rejected stacked above in vermillion; every lane has the same bar
 * heights, since every policy saw the same trace), and under it the units admitted in the
 * trailing window for the busiest key against the limit (or, for a leaky bucket in shaping
 * mode, the delay asked of admitted requests). Same result and options, same bytes.
 */
export function renderSvg(result: SimulationResult, options: ChartOptions = {}): string {
  const width = Math.max(480, Math.round(options.width ?? 960))
  const x0 = PAD_LEFT
  const x1 = width - PAD_RIGHT
  const plotW = x1 - x0
  const { from, to } = result.trace
  const span = to - from
  const xOf = (t: number) => x0 + ((t - from) / span) * plotW
  const lanes = result.runs.length
  const axisY = TOP + lanes * LANE - LANE_GAP
  const height = axisY + AXIS
  const bin = niceStep(span / Math.floor(plotW / 4))
  const tick = niceStep(span / 10)
  const title = options.title ?? result.trace.name

  // Bins: the same totals in every lane; each lane splits them into admitted and rejected.
  const nBins = Math.ceil(span / bin)
  const binOf = new Int32Array(result.requests.length)
  const totals = new Float64Array(nBins)
  const times = new Float64Array(result.requests.length)
  result.requests.forEach((r, i) => {
    const b = Math.min(nBins - 1, Math.max(0, Math.floor((r.t - from) / bin)))
    binOf[i] = b
    times[i] = r.t
    totals[b] = (totals[b] as number) + 1
  })
  let yMax = 1
  for (const v of totals) if (v > yMax) yMax = v

  const out: string[] = []
  const t = result.trace
  const starts = from >= SECONDS_BELOW ? ` · starts ${new Date(from).toISOString().replace('.000Z', 'Z')}` : ''
  const subtitle = `${count(t.requests)} requests${t.keys > 1 ? ` from ${count(t.keys)} keys` : ''} over ${formatOffset(span)}${starts} · bars: requests per ${formatWindow(bin)}`
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${esc(FONT)}" font-size="12" role="img" aria-labelledby="halt-title halt-desc">`,
    `<title id="halt-title">${esc(title)}</title>`,
    `<desc id="halt-desc">${esc(describe(result))}</desc>`,
    `<rect width="${width}" height="${height}" fill="#FFFFFF"/>`,
    text(x0, 26, title, `font-size="16" font-weight="bold" fill="${COLORS.text}"`),
    text(x0, 45, subtitle, `fill="${COLORS.muted}"`),
    legend(x0, 66, result.runs),
  )

  // Time grid through every lane, and the axis under the last.
  const grid: string[] = []
  const ticks: string[] = []
  for (let k = 0; k * tick <= span; k++) {
    const x = xOf(from + k * tick)
    grid.push(`M${n(x)} ${n(TOP + HEADER)}V${n(axisY)}`)
    ticks.push(`<line x1="${n(x)}" y1="${n(axisY)}" x2="${n(x)}" y2="${n(axisY + 5)}" stroke="${COLORS.muted}"/>`)
    ticks.push(text(x, axisY + 18, formatOffset(k * tick), `text-anchor="middle" fill="${COLORS.muted}"`))
  }
  out.push(`<path d="${grid.join('')}" stroke="${COLORS.grid}" fill="none"/>`)

  result.runs.forEach((run, i) => {
    out.push(lane(run, TOP + i * LANE, { x0, x1, xOf, from, to, span, bin, nBins, binOf, times, totals, yMax, plotW }))
  })

  out.push(
    `<line x1="${x0}" y1="${n(axisY)}" x2="${x1}" y2="${n(axisY)}" stroke="${COLORS.muted}"/>`,
    ...ticks,
    text(x1, axisY + 36, 'time since the start of the trace', `text-anchor="end" fill="${COLORS.muted}"`),
    '</svg>',
  )
  return `${out.join('\n')}\n`
}

/** A plain-text account of the chart, for screen readers. */
function describe(result: SimulationResult): string {
  return result.summaries
    .map((s) => `${s.label}: admitted ${s.admitted} of ${s.requests}, rejected ${s.rejected}, peak ${fixed(s.peakAdmitted, 2)} per ${formatWindow(s.windowMs)}`)
    .join('; ')
}

function legend(x: number, y: number, runs: PolicyRun[]): string {
  const items: [string, string][] = [
    [`<rect x="0" y="-9" width="10" height="10" fill="${COLORS.admitted}"/>`, 'admitted'],
    [`<rect x="0" y="-9" width="10" height="10" fill="${COLORS.rejected}"/>`, 'rejected'],
  ]
  if (runs.some((r) => r.delayMs === undefined)) {
    const busiest = runs.some((r) => r.summary.keys.length > 1) ? ' (busiest key)' : ''
    items.push([`<path d="M0 -4H14" stroke="${COLORS.window}" stroke-width="2"/>`, `admitted in the trailing window${busiest}`])
    items.push([`<path d="M0 -4H14" stroke="${COLORS.limit}" stroke-dasharray="4 3"/>`, 'limit'])
  }
  if (runs.some((r) => r.delayMs !== undefined)) {
    items.push([`<rect x="2" y="-9" width="8" height="10" fill="${COLORS.delay}"/>`, 'shaping delay'])
  }
  if (runs.some((r) => r.rule.algorithm.name === 'fixed_window')) {
    items.push([`<path d="M7 -10V1" stroke="${COLORS.boundary}" stroke-dasharray="2 2"/>`, 'fixed window boundary'])
  }
  const parts: string[] = []
  let at = x
  for (const [mark, label] of items) {
    parts.push(`<g transform="translate(${n(at)} ${n(y)})">${mark}${text(18, 0, label, `fill="${COLORS.text}"`)}</g>`)
    at += 18 + textWidth(label, 12) + 18
  }
  return `<g class="legend">${parts.join('')}</g>`
}

interface Frame {
  x0: number
  x1: number
  xOf: (t: number) => number
  from: number
  to: number
  span: number
  bin: number
  nBins: number
  binOf: Int32Array
  /** Each request's time, in `result.requests` order. */
  times: Float64Array
  totals: Float64Array
  yMax: number
  plotW: number
}

function lane(run: PolicyRun, y: number, f: Frame): string {
  const s = run.summary
  const out: string[] = []
  out.push(`<g class="lane" data-policy="${esc(s.label)}">`)
  out.push(text(f.x0, y + 14, s.label, `font-size="13" font-weight="bold" fill="${COLORS.text}"`))
  out.push(text(f.x0, y + 31, stats(run), `fill="${COLORS.muted}"`))

  // Bars: admitted from the baseline up, rejected stacked on top.
  const top = y + HEADER
  const base = top + BARS
  const admitted = new Float64Array(f.nBins)
  run.allowed.forEach((a, i) => {
    const b = f.binOf[i] as number
    if (a === 1) admitted[b] = (admitted[b] as number) + 1
  })
  const scale = BARS / f.yMax
  const blue: string[] = []
  const red: string[] = []
  for (let b = 0; b < f.nBins; b++) {
    const total = f.totals[b] as number
    if (total === 0) continue
    const a = admitted[b] as number
    const left = f.xOf(f.from + b * f.bin)
    const right = Math.min(f.x1, f.xOf(f.from + (b + 1) * f.bin))
    const w = right - left > 3 ? right - left - 0.6 : right - left
    if (a > 0) blue.push(`M${n(left)} ${n(base)}h${n(w)}v${n(-a * scale)}h${n(-w)}z`)
    if (total > a) red.push(`M${n(left)} ${n(base - a * scale)}h${n(w)}v${n(-(total - a) * scale)}h${n(-w)}z`)
  }
  out.push(`<line x1="${f.x0}" y1="${n(base)}" x2="${f.x1}" y2="${n(base)}" stroke="${COLORS.muted}" stroke-width="0.5"/>`)
  if (blue.length > 0) out.push(`<path class="admitted" d="${blue.join('')}" fill="${COLORS.admitted}"/>`)
  if (red.length > 0) out.push(`<path class="rejected" d="${red.join('')}" fill="${COLORS.rejected}"/>`)
  out.push(text(f.x0 - 6, top + 9, count(f.yMax), `text-anchor="end" font-size="11" fill="${COLORS.muted}"`))
  out.push(text(f.x0 - 6, base, '0', `text-anchor="end" font-size="11" fill="${COLORS.muted}"`))
  if (run.rule.algorithm.name === 'fixed_window') out.push(boundaries(run.rule.windowMs, top, base, f))

  const bandTop = base + GAP
  const bandBase = bandTop + BAND
  out.push(`<line x1="${f.x0}" y1="${n(bandBase)}" x2="${f.x1}" y2="${n(bandBase)}" stroke="${COLORS.muted}" stroke-width="0.5"/>`)
  out.push(run.delayMs === undefined ? windowBand(run, bandTop, bandBase, f) : delayBand(run, bandTop, bandBase, f))
  out.push('</g>')
  return out.join('\n')
}

function stats(run: PolicyRun): string {
  const s = run.summary
  const pct = s.requests === 0 ? '0' : fixed((100 * s.admitted) / s.requests, 1)
  const parts = [`admitted ${count(s.admitted)} of ${count(s.requests)} (${pct}%)`, `rejected ${count(s.rejected)}`]
  const over = s.peakAdmitted > s.limit + 1e-9 ? `, ${fixed(s.peakAdmitted / s.limit, 2)}x the limit` : ''
  const who = s.keys.length > 1 ? ` for key ${s.peakKey}` : ''
  parts.push(`peak ${count(s.peakAdmitted)} per ${formatWindow(s.windowMs)}${who}${over}`)
  if (s.rejected > 0) parts.push(`longest retry-after ${formatDuration(s.longestRetryAfterMs)}`)
  if (run.delayMs !== undefined) parts.push(`longest delay ${formatDuration(s.longestDelayMs)}`)
  return parts.join(' · ')
}

function boundaries(windowMs: number, top: number, base: number, f: Frame): string {
  const first = Math.floor(f.from / windowMs) * windowMs + windowMs
  if ((f.to - first) / windowMs > 60) return '' // too many to help
  const d: string[] = []
  for (let b = first; b < f.to; b += windowMs) d.push(`M${n(f.xOf(b))} ${n(top)}V${n(base)}`)
  return d.length === 0 ? '' : `<path class="boundary" d="${d.join('')}" stroke="${COLORS.boundary}" stroke-width="1.2" stroke-dasharray="3 2" fill="none"/>`
}

/**
 * The units admitted for the busiest key in the trailing window (t - window, t], as a step
 * line; each pixel column shows the highest value within it, so no peak is lost between pixels.
 */
function windowBand(run: PolicyRun, top: number, base: number, f: Frame): string {
  const s = run.summary
  const W = s.windowMs
  const { t: times, cost } = run.peakKeyAdmissions
  const cols = Math.max(1, Math.round(f.plotW))
  const colMax = new Float64Array(cols)
  // Sweep adds (at t) and removals (at t + W, before adds at the same instant) across the columns.
  let value = 0
  let add = 0
  let remove = 0
  for (let c = 0; c < cols; c++) {
    const end = f.from + ((c + 1) / cols) * f.span
    let m = value
    while (add < times.length || remove < add) {
      const tAdd = add < times.length ? (times[add] as number) : Number.POSITIVE_INFINITY
      const tRemove = remove < add ? (times[remove] as number) + W : Number.POSITIVE_INFINITY
      if (Math.min(tAdd, tRemove) >= end) break
      if (tRemove <= tAdd) value -= cost[remove++] as number
      else {
        value += cost[add++] as number
        if (value > m) m = value
      }
    }
    colMax[c] = Math.max(m, value)
  }
  const vMax = Math.max(s.peakAdmitted, s.limit) * 1.6
  const yOf = (v: number) => base - (v / vMax) * BAND
  let d = `M${n(f.x0)} ${n(base)}`
  let prev = Number.NaN
  for (let c = 0; c < cols; c++) {
    const v = colMax[c] as number
    if (v !== prev) {
      d += `H${n(f.x0 + (c / cols) * f.plotW)}V${n(yOf(v))}`
      prev = v
    }
  }
  d += `H${n(f.x1)}`
  const limitY = yOf(s.limit)
  const who = s.keys.length > 1 ? ` (key ${s.peakKey})` : ''
  return [
    `<path class="window-fill" d="${d}V${n(base)}Z" fill="${COLORS.window}" fill-opacity="0.15"/>`,
    `<path class="window" d="${d}" stroke="${COLORS.window}" stroke-width="1.5" fill="none"/>`,
    `<path class="limit" d="M${n(f.x0)} ${n(limitY)}H${n(f.x1)}" stroke="${COLORS.limit}" stroke-dasharray="4 3" fill="none"/>`,
    text(f.x1 - 2, limitY - 3, `limit ${count(s.limit)}`, `text-anchor="end" font-size="11" fill="${COLORS.text}"`),
    text(f.x0 + 4, top + 10, `admitted in the last ${formatWindow(W)}${who}: peak ${count(s.peakAdmitted)}`, `font-size="11" fill="${COLORS.muted}"`),
    text(f.x0 - 6, yOf(s.peakAdmitted) + 4, count(s.peakAdmitted), `text-anchor="end" font-size="11" fill="${COLORS.window}"`),
  ].join('\n')
}

/** Leaky bucket in shaping mode: the longest delay asked of a request admitted in each pixel column. */
function delayBand(run: PolicyRun, top: number, base: number, f: Frame): string {
  const delays = run.delayMs as Float64Array
  const cols = Math.max(1, Math.round(f.plotW))
  const colMax = new Float64Array(cols)
  const requests = run.allowed
  let max = 0
  for (let i = 0; i < requests.length; i++) {
    if (requests[i] !== 1) continue
    const d = delays[i] as number
    const c = Math.min(cols - 1, Math.floor((((f.times[i] as number) - f.from) / f.span) * cols))
    if (d > (colMax[c] as number)) colMax[c] = d
    if (d > max) max = d
  }
  const vMax = Math.max(max, 1) * 1.6
  const bars: string[] = []
  const colW = f.plotW / cols
  for (let c = 0; c < cols; c++) {
    const v = colMax[c] as number
    if (v > 0) bars.push(`M${n(f.x0 + c * colW)} ${n(base)}h${n(colW)}v${n(-(v / vMax) * BAND)}h${n(-colW)}z`)
  }
  return [
    bars.length > 0 ? `<path class="delay" d="${bars.join('')}" fill="${COLORS.delay}"/>` : '',
    text(f.x0 + 4, top + 10, `delay asked of admitted requests: longest ${formatDuration(max)}`, `font-size="11" fill="${COLORS.muted}"`),
  ]
    .filter((x) => x !== '')
    .join('\n')
}
