// The summary of a simulation as a terminal table or a Markdown table, overall and per key.
import { count, fixed, formatDuration, formatWindow } from './format.js'
import type { KeySummary, PolicySummary, SimulationResult } from './run.js'

type Row = string[]
const HEAD = ['policy', 'requests', 'admitted', 'rejected', 'peak in any window', 'longest retry-after', 'longest delay']
const KEY_HEAD = ['policy', 'key', 'requests', 'admitted', 'rejected', 'peak in any window', 'longest retry-after', 'longest delay']

function pct(part: number, whole: number): string {
  return whole === 0 ? '' : ` (${fixed((100 * part) / whole, 1)}%)`
}

function peak(p: PolicySummary, value: number): string {
  const ratio = value > p.limit + 1e-9 ? `, ${fixed(value / p.limit, 2)}x limit` : ''
  return `${count(value)} per ${formatWindow(p.windowMs)}${ratio}`
}

function waits(p: PolicySummary, k: Pick<KeySummary, 'rejected' | 'longestRetryAfterMs' | 'longestDelayMs'>): Row {
  return [k.rejected > 0 ? formatDuration(k.longestRetryAfterMs) : '-', p.shaping ? formatDuration(k.longestDelayMs) : '-']
}

function policyRows(summaries: PolicySummary[]): Row[] {
  return summaries.map((p) => [
    p.label,
    count(p.requests),
    `${count(p.admitted)}${pct(p.admitted, p.requests)}`,
    `${count(p.rejected)}${pct(p.rejected, p.requests)}`,
    peak(p, p.peakAdmitted),
    ...waits(p, p),
  ])
}

function keyRows(summaries: PolicySummary[], top: number): Row[] {
  return summaries.flatMap((p) =>
    p.keys
      .slice(0, top)
      .map((k) => [
        p.label,
        k.key,
        count(k.requests),
        `${count(k.admitted)}${pct(k.admitted, k.requests)}`,
        `${count(k.rejected)}${pct(k.rejected, k.requests)}`,
        peak(p, k.peakAdmitted),
        ...waits(p, k),
      ]),
  )
}

/** Columns after the first ones are right-aligned numbers. */
function plain(head: Row, rows: Row[], leftColumns: number): string {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] as string).length)))
  const line = (r: Row) =>
    r
      .map((cell, c) => (c < leftColumns ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number)))
      .join('  ')
      .trimEnd()
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

function markdown(head: Row, rows: Row[], leftColumns: number): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|')
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, c) => (c < leftColumns ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n')
}

export interface TableOptions {
  /** `text` (default) for a terminal, `markdown` for docs. */
  format?: 'text' | 'markdown'
  /** Per-key rows per policy (the most rejected keys first) when the trace has several keys. Default 10; 0 for none. */
  top?: number
}

/**
 * The summary of a simulation as a table: per policy the requests, admitted, rejected, the peak
 * admitted for one key in any window, the longest retry-after and shaping delay; then, when the
 * trace has several keys, the same per key (most rejected first).
 */
export function formatSummary(result: SimulationResult, options: TableOptions = {}): string {
  const render = options.format === 'markdown' ? markdown : plain
  const top = options.top ?? 10
  const out = [render(HEAD, policyRows(result.summaries), 1)]
  if (result.trace.keys > 1 && top > 0) {
    const shown = Math.min(top, result.trace.keys)
    const caption = shown < result.trace.keys ? `per key (the ${shown} most rejected of ${count(result.trace.keys)})` : 'per key'
    out.push(options.format === 'markdown' ? `*${caption}:*` : `${caption}:`)
    out.push(render(KEY_HEAD, keyRows(result.summaries, top), 2))
  }
  return `${out.join('\n\n')}\n`
}
