// PenaltyManager: an abuse score per identity that decays continuously; crossing a threshold starts a penalty that
// grows with repeat offences (spec/saas/README.md §3). Over any store, atomically.
import { penaltyRule } from '../core/algorithms/penalty.js'
import { HaltConfigError } from '../core/errors.js'
import type { Clock } from '../core/limiter.js'
import { compilePolicy, durationMs, type Rule } from '../core/policy.js'
import type { MaybePromise, Store } from '../core/store.js'
import type { Duration, Outcome } from '../core/types.js'
import { InMemoryStore } from '../stores/memory.js'

export interface PenaltyConfig {
  /** Abuse score at which a penalty starts (e.g. 10 violations of severity 1). */
  threshold: number
  /** Length of the first penalty: seconds or a duration string (`'5m'`). Each repeat offence doubles it, up to `maxDuration`. */
  duration: Duration
  /** While penalised, a `RateLimiter` with `penalties` scales the identity's limit (and burst) by this, in (0, 1]. Default 0.5. */
  multiplier?: number
  /** Points per hour the abuse score loses, continuously (> 0). Default: `threshold` (a full score is forgotten in an hour). */
  decayRate?: number
  /** The longest penalty. Default 16 x `duration` (the fifth offence onwards). */
  maxDuration?: Duration
  /** Namespaces the scores: managers of different names never share them. Default `'penalty'`. */
  name?: string
}

export interface PenaltyManagerOptions<S extends Store = InMemoryStore> {
  /** Where scores live. Default: a new `InMemoryStore`. */
  store?: S
  config: PenaltyConfig
  /** Default `Date.now`. */
  clock?: Clock
}

/** One identity's standing, as of the call that returned it. */
export class Penalty {
  readonly #clock: Clock
  constructor(
    /** The abuse score after decay (and after the violation just recorded). */
    readonly abuseScore: number,
    /** Epoch milliseconds when the current penalty ends; 0 when none is running. */
    readonly penaltyUntilMs: number,
    /** Penalties started since the identity was last forgiven (score decayed to 0 with no penalty running). */
    readonly offences: number,
    clock: Clock,
  ) {
    this.#clock = clock
  }

  /** Epoch seconds when the current penalty ends; 0 when none is running. */
  get penaltyUntil(): number {
    return Math.ceil(this.penaltyUntilMs / 1000)
  }

  /** Whether the penalty is running at `now` (default: the manager's clock now). */
  isActive(now: number = this.#clock()): boolean {
    return now < this.penaltyUntilMs
  }
}

function positive(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0
}

/**
 * Penalties for abusive identities. `recordViolation` adds `severity` to the identity's abuse score, which decays
 * continuously at `decayRate` points per hour; reaching `threshold` starts a penalty of `duration`, doubled for each
 * repeat offence up to `maxDuration`. Give it to a `RateLimiter` as `penalties` and every blocked request records a
 * violation, while a penalised identity's limit is scaled by `multiplier`.
 *
 * @example
 * const penalties = new PenaltyManager({ config: { threshold: 10, duration: '5m', multiplier: 0.5, decayRate: 5 } })
 * const p = penalties.recordViolation('ip:203.0.113.7', 2)
 * if (p.isActive()) console.log(`penalised until ${new Date(p.penaltyUntilMs).toISOString()}`)
 */
export class PenaltyManager<S extends Store = InMemoryStore> {
  readonly store: S
  /** The compiled kernel rule (namespace `<name>:pen`). */
  readonly rule: Rule
  readonly multiplier: number
  readonly config: Readonly<Required<PenaltyConfig>>
  private readonly clock: Clock
  /** Penalised rules, once per rule: the same policy and state, limit and burst scaled by `multiplier`. */
  private readonly scaled = new WeakMap<Rule, Rule>()
  private readonly scaledRules = new WeakSet<Rule>()

  constructor(options: PenaltyManagerOptions<S>) {
    if (options === null || typeof options !== 'object' || options.config === null || typeof options.config !== 'object') {
      throw new HaltConfigError(
        'HALT_INVALID_PENALTY',
        "PenaltyManager needs { config: { threshold, duration } }. Fix: new PenaltyManager({ config: { threshold: 10, duration: '5m' } }).",
      )
    }
    const c = options.config
    const name = c.name ?? 'penalty'
    if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
      throw new HaltConfigError('HALT_INVALID_PENALTY', `penalty name must be a non-empty string of at most 200 characters, got ${JSON.stringify(name)}.`)
    }
    if (!positive(c.threshold)) {
      throw new HaltConfigError(
        'HALT_INVALID_PENALTY',
        `penalty '${name}': threshold must be a positive finite number, got ${String(c.threshold)}. Fix: threshold: 10.`,
      )
    }
    const ms = c.duration === undefined ? Number.NaN : durationMs(c.duration, 'duration', name)
    if (!(ms >= 1)) {
      throw new HaltConfigError('HALT_INVALID_PENALTY', `penalty '${name}': duration must be at least 1 ms, got ${String(c.duration)}. Fix: duration: '5m'.`)
    }
    const maxMs = c.maxDuration === undefined ? 16 * ms : durationMs(c.maxDuration, 'maxDuration', name)
    if (!(maxMs >= ms) || !Number.isFinite(maxMs)) {
      throw new HaltConfigError(
        'HALT_INVALID_PENALTY',
        `penalty '${name}': maxDuration must be finite and at least duration, got ${String(c.maxDuration)}. Fix: omit it (16 x duration).`,
      )
    }
    const multiplier = c.multiplier ?? 0.5
    if (!positive(multiplier) || multiplier > 1) {
      throw new HaltConfigError(
        'HALT_INVALID_PENALTY',
        `penalty '${name}': multiplier must be in (0, 1] (the share of the limit a penalised identity keeps), got ${String(c.multiplier)}. Fix: multiplier: 0.5.`,
      )
    }
    const decayRate = c.decayRate ?? c.threshold
    if (!positive(decayRate)) {
      throw new HaltConfigError(
        'HALT_INVALID_PENALTY',
        `penalty '${name}': decayRate must be a positive finite number of points per hour, got ${String(c.decayRate)}. Fix: decayRate: 5.`,
      )
    }
    const store = options.store ?? (new InMemoryStore() as unknown as S)
    if (store === null || typeof store !== 'object' || typeof store.consume !== 'function') {
      throw new HaltConfigError('HALT_INVALID_STORE', 'PenaltyManager: store must implement consume/peek/reset/clear (e.g. new InMemoryStore()).')
    }
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new HaltConfigError('HALT_INVALID_CLOCK', 'PenaltyManager: clock must be a function returning epoch milliseconds, like Date.now.')
    }
    this.store = store
    this.clock = options.clock ?? Date.now
    this.multiplier = multiplier
    this.config = Object.freeze({ name, threshold: c.threshold, duration: ms / 1000, multiplier, decayRate, maxDuration: maxMs / 1000 })
    this.rule = penaltyRule(name, c.threshold, ms, decayRate, maxMs)
  }

  /** Add a violation of `severity` (default 1) to `identifier`'s score; the answer says whether a penalty is running. */
  recordViolation(identifier: string, severity = 1, now: number = this.clock()): MaybePromise<S, Penalty> {
    if (!(typeof severity === 'number' && Number.isFinite(severity) && severity >= 0)) {
      throw new HaltConfigError('HALT_INVALID_COST', `recordViolation: severity must be a finite number >= 0, got ${String(severity)}. Fix: 1.`)
    }
    return this.map(this.store.consume(this.rule.ns, checkedId(identifier), this.rule, now, severity), now)
  }

  /** `identifier`'s standing now, without recording anything. */
  getPenalty(identifier: string, now: number = this.clock()): MaybePromise<S, Penalty> {
    return this.map(this.store.peek(this.rule.ns, checkedId(identifier), this.rule, now), now)
  }

  /** Forgive `identifier` at once: score, penalty and offences. */
  clearPenalty(identifier: string): MaybePromise<S, void> {
    return this.store.reset(this.rule.ns, checkedId(identifier)) as MaybePromise<S, void>
  }

  /**
   * `rule` as a penalised identity gets it: the same policy and namespace (so the same state), limit and burst
   * scaled by `multiplier` (never below the policy's cost). Compiled once per rule.
   */
  penalised(rule: Rule): Rule {
    let r = this.scaled.get(rule)
    if (r === undefined) {
      const m = this.multiplier
      // The capacity (limit for window algorithms, burst for bucket ones) never drops below the policy's cost.
      const windowed = rule.algorithm.windowed
      const limit = windowed ? Math.max(rule.limit * m, rule.cost) : rule.limit * m
      const burst = windowed ? rule.burst * m : Math.max(rule.burst * m, rule.cost)
      r = compilePolicy({ ...rule.policy, limit, burst })
      this.scaled.set(rule, r)
      this.scaledRules.add(r)
    }
    return r
  }

  /** Whether `rule` is one of this manager's penalised rules. */
  isPenalisedRule(rule: Rule): boolean {
    return this.scaledRules.has(rule)
  }

  private map(o: Outcome | Promise<Outcome>, now: number): MaybePromise<S, Penalty> {
    const clock = this.clock
    const make = (x: Outcome) => new Penalty(x.delayMs, x.retryAfterMs > 0 ? now + x.retryAfterMs : 0, x.remaining, clock)
    return (o instanceof Promise ? o.then(make) : make(o)) as MaybePromise<S, Penalty>
  }
}

function checkedId(identifier: unknown): string {
  if (typeof identifier === 'string') return identifier
  throw new HaltConfigError('HALT_INVALID_IDENTIFIER', `penalties: the identifier must be a string such as 'ip:203.0.113.7', got ${typeof identifier}.`)
}
