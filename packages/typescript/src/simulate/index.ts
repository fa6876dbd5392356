// halt/simulate: replay traffic through policies and see what each would do, as numbers and a chart. No Node built-ins.
export { count, formatDuration, formatOffset, formatWindow, parseDuration, parseRate } from './format.js'
export { DEFAULT_START, type GenerateOptions, generateTrace, MAX_REQUESTS, PATTERNS, type Pattern, prng } from './generate.js'
export { describeRule, POLICY_SPEC_EXAMPLE, POLICY_SPEC_GRAMMAR, parsePolicySpec } from './policy-spec.js'
export {
  type KeySummary,
  type PolicyRun,
  type PolicySummary,
  type SimulateOptions,
  type SimulationResult,
  simulate,
  type TimedRequest,
  type TraceSummary,
} from './run.js'
export { type ChartOptions, renderSvg } from './svg.js'
export { formatSummary, type TableOptions } from './table.js'
export {
  DEFAULT_KEY,
  formatTraceCsv,
  type ParseTraceOptions,
  parseDate,
  parseTrace,
  SECONDS_BELOW,
  type Trace,
  TraceError,
  type TraceRequest,
} from './trace.js'
