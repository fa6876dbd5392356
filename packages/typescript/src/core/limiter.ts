// RateLimiter: resolves the policy, applies cost, calls the store, counts, emits telemetry, returns a Decision.

import { InMemoryStore } from '../stores/memory.js'
import { HaltConfigError, RateLimitExceeded } from './errors.js'
import { Circuit, type FailoverOptions, type OnStoreError, validateFailover, withTimeout } from './failover.js'
import { compilePolicy, type Rule } from './policy.js'
import type { MaybePromise, Store, SyncStore } from './store.js'
import type { AlgorithmName, Decision, Outcome, Policy } from './types.js'

/** Milliseconds since the Unix epoch. Inject a fake one in tests. */
export type Clock = () => number

/** One decision, as telemetry sees it. */
export interface DecisionEvent {
  key: string
  cost: number
  decision: Decision
  /** Set when the store failed and the decision came from the failure policy. */
  storeError?: OnStoreError
}

/** A store call that failed or timed out. */
export interface StoreErrorEvent {
  error: unknown
  key: string
  policy: string
  operation: 'check' | 'peek'
  /** What the limiter did instead. */
  action: OnStoreError
}

/** Hooks a limiter calls; every one optional. The telemetry issue adds exporters. */
export interface Telemetry {
  onDecision?(event: DecisionEvent): void
  onStoreError?(event: StoreErrorEvent): void
}

export interface RateLimiterOptions<S extends Store = Store> extends FailoverOptions {
  /** Where state lives. Default: a new `InMemoryStore`. */
  store?: S
  policy: Policy
  /** Default `Date.now`. */
  clock?: Clock
  telemetry?: Telemetry
}

export interface CheckOptions {
  /** Units this request consumes. Default: the policy's `cost` (1). */
  cost?: number
  /** Use another algorithm for this request (its state is kept apart). */
  algorithm?: AlgorithmName
}

export interface LimiterStats {
  allowed: number
  blocked: number
  totalChecks: number
  activeKeys: number
}

/**
 * A rate limiter: one policy over one store.
 *
 * @example
 * const limiter = new RateLimiter({ policy: { name: 'api', limit: 100, window: 60 } })
 * const d = limiter.check('user:42')      // in-memory store: a Decision, no promise
 * if (!d.allowed) console.log(`retry in ${d.retryAfter}s`)
 */
export class RateLimiter<S extends Store = InMemoryStore> {
  readonly store: S
  readonly rule: Rule
  private readonly clock: Clock
  private readonly telemetry: Telemetry | undefined
  private readonly overrides = new Map<string, Rule>()
  private readonly failover: Required<FailoverOptions>
  private readonly circuit: Circuit
  private fallbackStore: InMemoryStore | undefined
  private allowedCount = 0
  private blockedCount = 0

  constructor(options: RateLimiterOptions<S>) {
    if (options === null || typeof options !== 'object') {
      throw new HaltConfigError('HALT_INVALID_OPTIONS', 'RateLimiter needs options like { policy: { limit: 100, window: 60 } }.')
    }
    if (options.policy === undefined) {
      throw new HaltConfigError('HALT_MISSING_POLICY', 'RateLimiter: policy is required. Fix: new RateLimiter({ policy: presets.PUBLIC_API }).')
    }
    this.rule = compilePolicy(options.policy)
    this.store = options.store ?? (new InMemoryStore() as unknown as S)
    if (typeof this.store.consume !== 'function') {
      throw new HaltConfigError('HALT_INVALID_STORE', 'RateLimiter: store must implement consume/peek/reset/clear (e.g. new InMemoryStore()).')
    }
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new HaltConfigError('HALT_INVALID_CLOCK', 'RateLimiter: clock must be a function returning epoch milliseconds, like Date.now.')
    }
    this.clock = options.clock ?? Date.now
    this.telemetry = options.telemetry
    this.failover = validateFailover(options)
    this.circuit = new Circuit(this.failover.retryStoreAfter)
  }

  /** True while the store is considered down (calls take the failure policy). */
  get storeDown(): boolean {
    return this.circuit.isOpen
  }

  /** The policy as given (after defaults are applied by validation). */
  get policy(): Readonly<Policy> {
    return this.rule.policy
  }

  /**
   * Take `cost` units for `key` and decide. Returns a `Decision` directly for a
   * synchronous store (the in-memory one) and a promise otherwise.
   */
  check(key: string, options?: CheckOptions): MaybePromise<S, Decision> {
    const rule = options?.algorithm === undefined ? this.rule : this.override(options.algorithm)
    const cost = options?.cost === undefined ? rule.cost : checkedCost(options.cost)
    const now = this.clock()
    if (this.store.synchronous) return this.finish(key, cost, rule, this.store.consume(rule.ns, key, rule, now, cost) as Outcome) as MaybePromise<S, Decision>
    return this.remote(key, rule, now, cost, 'check') as MaybePromise<S, Decision>
  }

  /** `check()` reduced to a boolean. */
  allow(key: string, options?: CheckOptions): MaybePromise<S, boolean> {
    const d = this.check(key, options) as Decision | Promise<Decision>
    return (d instanceof Promise ? d.then((x) => x.allowed) : d.allowed) as MaybePromise<S, boolean>
  }

  /** What `check()` would say for a request of cost 0, without consuming anything. */
  peek(key: string, options?: Pick<CheckOptions, 'algorithm'>): MaybePromise<S, Decision> {
    const rule = options?.algorithm === undefined ? this.rule : this.override(options.algorithm)
    const now = this.clock()
    if (this.store.synchronous) return toDecision(rule, this.store.peek(rule.ns, key, rule, now) as Outcome) as MaybePromise<S, Decision>
    return this.remote(key, rule, now, 0, 'peek') as MaybePromise<S, Decision>
  }

  /** Forget `key`'s state under this policy (every algorithm used with it). */
  reset(key: string): MaybePromise<S, void> {
    const rules = [this.rule, ...this.overrides.values()]
    const results = rules.map((r) => this.store.reset(r.ns, key))
    return (this.store.synchronous ? undefined : Promise.all(results).then(() => undefined)) as MaybePromise<S, void>
  }

  /** Forget every key of this policy, and zero the stats. */
  clear(): MaybePromise<S, void> {
    this.allowedCount = 0
    this.blockedCount = 0
    const rules = [this.rule, ...this.overrides.values()]
    const results = rules.map((r) => this.store.clear(r.ns))
    return (this.store.synchronous ? undefined : Promise.all(results).then(() => undefined)) as MaybePromise<S, void>
  }

  /** Counts since creation (or `clear()`); `activeKeys` from the store, -1 when it cannot tell. */
  stats(): MaybePromise<S, LimiterStats> {
    const size = this.store.size?.(this.rule.ns) ?? -1
    const make = (activeKeys: number): LimiterStats => ({
      allowed: this.allowedCount,
      blocked: this.blockedCount,
      totalChecks: this.allowedCount + this.blockedCount,
      activeKeys,
    })
    return (typeof size === 'number' ? make(size) : size.then(make)) as MaybePromise<S, LimiterStats>
  }

  /**
   * Wrap a function so that each call is checked first; over the limit it throws
   * `RateLimitExceeded` instead of calling. `key` is fixed or computed from the arguments.
   * With a synchronous store the wrapper is synchronous too.
   *
   * @example
   * const send = limiter.wrap(sendEmail, (to: string) => `email:${to}`)
   */
  wrap<A extends unknown[], R>(
    fn: (...args: A) => R,
    key: string | ((...args: A) => string),
    options?: CheckOptions,
  ): (...args: A) => S extends SyncStore ? R : Promise<Awaited<R>> {
    if (typeof fn !== 'function') throw new HaltConfigError('HALT_INVALID_WRAP', 'limiter.wrap(fn, key): fn must be a function.')
    if (typeof key !== 'string' && typeof key !== 'function') {
      throw new HaltConfigError('HALT_INVALID_WRAP', 'limiter.wrap(fn, key): key must be a string or a function of the arguments returning one.')
    }
    const keyOf = typeof key === 'string' ? () => key : key
    const gate = (d: Decision) => {
      if (!d.allowed) throw new RateLimitExceeded(d)
    }
    return ((...args: A) => {
      const d = this.check(keyOf(...args), options) as Decision | Promise<Decision>
      if (d instanceof Promise) return d.then((x) => (gate(x), fn(...args)))
      gate(d)
      return fn(...args)
    }) as (...args: A) => S extends SyncStore ? R : Promise<Awaited<R>>
  }

  private finish(key: string, cost: number, rule: Rule, o: Outcome, storeError?: OnStoreError): Decision {
    return this.record(key, cost, toDecision(rule, o), storeError)
  }

  /** Count a decision and tell telemetry. */
  private record(key: string, cost: number, d: Decision, storeError?: OnStoreError): Decision {
    if (d.allowed) this.allowedCount++
    else this.blockedCount++
    if (storeError !== undefined) this.telemetry?.onDecision?.({ key, cost, decision: d, storeError })
    else this.telemetry?.onDecision?.({ key, cost, decision: d })
    return d
  }

  /** A call to an asynchronous store, under the timeout, the circuit breaker and the failure policy. */
  private async remote(key: string, rule: Rule, now: number, cost: number, operation: 'check' | 'peek'): Promise<Decision> {
    if (this.circuit.allows(now)) {
      try {
        const call = operation === 'check' ? this.store.consume(rule.ns, key, rule, now, cost) : this.store.peek(rule.ns, key, rule, now)
        const o = await withTimeout(call, this.failover.timeout)
        this.circuit.success()
        return operation === 'check' ? this.finish(key, cost, rule, o) : toDecision(rule, o)
      } catch (error) {
        this.circuit.failure(this.clock())
        this.telemetry?.onStoreError?.({ error, key, policy: rule.name, operation, action: this.failover.onStoreError })
      }
    }
    return this.degraded(key, rule, now, cost, operation)
  }

  /** The decision while the store is down, as `onStoreError` says. */
  private degraded(key: string, rule: Rule, now: number, cost: number, operation: 'check' | 'peek'): Decision {
    const mode = this.failover.onStoreError
    if (mode === 'fallback') {
      this.fallbackStore ??= new InMemoryStore()
      const o = operation === 'check' ? this.fallbackStore.consume(rule.ns, key, rule, now, cost) : this.fallbackStore.peek(rule.ns, key, rule, now)
      return operation === 'check' ? this.finish(key, cost, rule, o, mode) : toDecision(rule, o)
    }
    const allowed = mode === 'open'
    const o: Outcome = {
      allowed,
      remaining: allowed ? Math.floor(rule.capacity) : 0,
      resetAtMs: now + rule.windowMs,
      retryAfterMs: allowed ? 0 : Math.max(1000, this.failover.retryStoreAfter),
      reason: undefined,
      delayMs: 0,
      expiresAtMs: now,
    }
    const d = toDecision(rule, o)
    d.reason = 'store_error'
    return operation === 'check' ? this.record(key, cost, d, mode) : d
  }

  private override(name: AlgorithmName): Rule {
    if (name === this.rule.policy.algorithm) return this.rule
    let rule = this.overrides.get(name)
    if (rule === undefined) {
      rule = this.rule.withAlgorithm(name)
      this.overrides.set(name, rule)
    }
    return rule
  }
}

/** Turn an algorithm outcome (ms) into the public decision (seconds). */
export function toDecision(rule: Rule, o: Outcome): Decision {
  return {
    allowed: o.allowed,
    limit: rule.limit,
    remaining: o.remaining,
    resetAt: Math.ceil(o.resetAtMs / 1000),
    retryAfter: Math.ceil(o.retryAfterMs / 1000),
    policy: rule.name,
    reason: o.reason,
    delay: o.delayMs / 1000,
  }
}

function checkedCost(cost: unknown): number {
  if (typeof cost === 'number' && Number.isFinite(cost) && cost >= 0) return cost
  throw new HaltConfigError('HALT_INVALID_COST', `check(): cost must be a finite number >= 0, got ${String(cost)}.`)
}
