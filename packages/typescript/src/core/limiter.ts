// RateLimiter: resolves the policy, applies cost, calls the store, counts, emits telemetry, returns a Decision.
// Takes a string key, or a RequestView (src/http): then exemptions, client address, key strategy and cost come first.

import type { HeaderFormat, SetHeader } from '../http/headers.js'
import { moreRestrictive, writeRateLimitHeaders } from '../http/headers.js'
import type { RequestView } from '../http/request.js'
import { ANONYMOUS_KEY, type ExemptReason, type HttpOptions, HttpRules, UNKNOWN_IP_KEY } from '../http/rules.js'
import { WarningCode } from '../http/warnings.js'
import type { PenaltyManager } from '../saas/penalty.js'
import { InMemoryStore } from '../stores/memory.js'
import { requestIdOf, TelemetryHub } from '../telemetry/hub.js'
import type { DecisionEvent, TelemetryOption } from '../telemetry/types.js'
import { HaltConfigError, RateLimitExceeded } from './errors.js'
import { Circuit, Deadlines, type FailoverOptions, type OnStoreError, validateFailover } from './failover.js'
import { compilePolicy, type Rule } from './policy.js'
import { compileSet } from './sets.js'
import type { MaybePromise, Store, SyncStore } from './store.js'
import type { AlgorithmName, Decision, KeyStrategyName, Outcome, Policy, PolicyMode } from './types.js'

/** Milliseconds since the Unix epoch. Inject a fake one in tests. */
export type Clock = () => number

/**
 * Chooses the policy of a request, e.g. by the user's plan, or a limit set (an
 * array of policies). Return the same objects each time (presets, constants):
 * each distinct policy or set is compiled once.
 * `undefined`, a throw or an invalid policy fall back to `defaultPolicy`.
 */
export type PolicyResolver = (req: RequestView) => Policy | readonly Policy[] | undefined | null

/** The cost of a request: units it consumes. A throw, NaN or a negative value falls back to the policy's cost. */
export type CostResolver = (req: RequestView) => number

export interface RateLimiterOptions<S extends Store = Store> extends FailoverOptions, HttpOptions {
  /** Where state lives. Default: a new `InMemoryStore`. */
  store?: S
  /**
   * The policy, or a function of the request choosing one (then `defaultPolicy`
   * is required).
   *
   * @example
   * policy: (req) => getPlanPolicy(plans.get(req.header('x-api-key')) ?? 'free'), defaultPolicy: presets.PLAN_FREE
   *
   * An array is a limit set: a request passes only if every (enforced) policy admits it, and then consumes from
   * each; if one rejects, none consumes. The decision describes the most restrictive policy.
   *
   * @example
   * policy: [{ name: 'per_second', limit: 10, window: 1 }, { name: 'per_day', limit: 10_000, window: '1d' }]
   */
  policy: Policy | readonly Policy[] | PolicyResolver
  /**
   * `'shadow'`: every policy of this limiter is shadow (evaluated and reported, never rejecting, no headers).
   * Default `'enforce'`: each policy's own `mode` applies.
   */
  mode?: PolicyMode
  /** Fraction of a policy's capacity at which `telemetry.onNearLimit` fires. Default 0.8. */
  nearLimit?: number
  /** With a `policy` function: the policy for string keys and whenever the function gives none or a bad one. */
  defaultPolicy?: Policy
  /** Units a request consumes: a number, or a function of the request. Default: the policy's `cost` (1). */
  cost?: number | CostResolver
  /** Default `Date.now`. */
  clock?: Clock
  /** Hooks or exporters told of every decision and store failure (see src/telemetry): one, or an array. */
  telemetry?: TelemetryOption
  /**
   * Penalties for abusers: every blocked request records a violation (severity 1) for its key, and while a key's
   * penalty runs its limit and burst are scaled by the manager's `multiplier` (rejections then say `reason: 'penalty'`).
   * A synchronous limiter needs a synchronous penalty store. See docs/saas.md.
   */
  penalties?: PenaltyManager<Store>
}

/** What `limiter.debugKey(req)` reports: the key a request maps to, and why. */
export interface KeyExplanation {
  /** The storage identity; undefined when the request is exempt. */
  key: string | undefined
  /** Why the request is exempt, if it is. */
  exempt: ExemptReason | undefined
  /** The client address as resolved (trusted proxies applied), if known. */
  clientIp: string | undefined
  strategy: KeyStrategyName
  /** Name of the policy the request falls under. */
  policy: string
  cost: number
  /** Each step of the resolution, in words. */
  steps: string[]
}

/** A request resolved to the numbers a check needs. */
interface Resolved {
  rule: Rule
  key: string
  cost: number
  exempt: ExemptReason | undefined
  clientIp: string | undefined
  strategy: KeyStrategyName
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
  /** Decisions of shadow policies that would have rejected (each shadow policy counts on its own). */
  shadowBlocked: number
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
  /** The compiled policy (with a policy function: the default policy). */
  readonly rule: Rule
  /** The compiled HTTP options: client address, exemptions, keys. */
  readonly http: HttpRules
  private readonly clock: Clock
  private readonly telemetry: TelemetryHub | undefined
  private readonly overrides = new Map<string, Rule>()
  private readonly resolver: PolicyResolver | undefined
  /** Policies a resolver returned, by object identity, and by content (for resolvers that build fresh objects). */
  private readonly resolved = new WeakMap<object, Rule>()
  private readonly byContent = new Map<string, Rule>()
  /** Every rule in use, by storage namespace: reset, clear and stats cover them all. */
  private readonly rules = new Map<string, Rule>()
  private readonly costFn: CostResolver | undefined
  private readonly costNumber: number | undefined
  private readonly failover: Required<FailoverOptions>
  private readonly circuit: Circuit
  private readonly deadlines: Deadlines
  private fallbackStore: InMemoryStore | undefined
  private readonly penalties: PenaltyManager<Store> | undefined
  private allowedCount = 0
  private blockedCount = 0
  private shadowBlockedCount = 0
  /** Several policies, or shadow ones: every check goes through `store.consumeSet`. */
  private readonly set: readonly Rule[] | undefined
  /** The set's key strategy (the one its policies name, if any). */
  private readonly setStrategy: KeyStrategyName | undefined
  /** Sets a resolver returned, by their first enforced rule (what `Resolved.rule` carries), and their key strategies. */
  private readonly setsByHead = new WeakMap<Rule, { rules: readonly Rule[]; strategy: KeyStrategyName | undefined }>()
  private readonly shadowMode: boolean
  private readonly nearFraction: number

  constructor(options: RateLimiterOptions<S>) {
    if (options === null || typeof options !== 'object') {
      throw new HaltConfigError('HALT_INVALID_OPTIONS', 'RateLimiter needs options like { policy: { limit: 100, window: 60 } }.')
    }
    if (options.policy === undefined) {
      throw new HaltConfigError('HALT_MISSING_POLICY', 'RateLimiter: policy is required. Fix: new RateLimiter({ policy: presets.PUBLIC_API }).')
    }
    const mode = options.mode ?? 'enforce'
    if (mode !== 'enforce' && mode !== 'shadow') {
      throw new HaltConfigError('HALT_INVALID_MODE', `RateLimiter: mode must be 'enforce' or 'shadow', got ${String(options.mode)}.`)
    }
    this.shadowMode = mode === 'shadow'
    const nearLimit = options.nearLimit ?? 0.8
    if (typeof nearLimit !== 'number' || !(nearLimit > 0 && nearLimit <= 1)) {
      throw new HaltConfigError(
        'HALT_INVALID_NEAR_LIMIT',
        `RateLimiter: nearLimit must be a fraction of the limit above 0 and at most 1, got ${String(options.nearLimit)}. Fix: nearLimit: 0.8.`,
      )
    }
    this.nearFraction = nearLimit
    let set: Rule[] | undefined
    if (Array.isArray(options.policy)) {
      if (options.defaultPolicy !== undefined) {
        throw new HaltConfigError(
          'HALT_INVALID_OPTIONS',
          'RateLimiter: defaultPolicy only applies when policy is a function of the request. Fix: remove defaultPolicy.',
        )
      }
      set = compileSet(options.policy as readonly Policy[], this.shadowMode)
      this.rule = set.find((r) => !r.shadow) ?? (set[0] as Rule)
    } else if (typeof options.policy === 'function') {
      if (options.defaultPolicy === undefined) {
        throw new HaltConfigError(
          'HALT_MISSING_DEFAULT_POLICY',
          'RateLimiter: a policy function needs defaultPolicy, used for string keys and when the function returns no policy, throws, or returns an invalid one. Fix: defaultPolicy: presets.PLAN_FREE.',
        )
      }
      this.resolver = options.policy as PolicyResolver
      this.rule = this.compile(options.defaultPolicy)
    } else {
      if (options.defaultPolicy !== undefined) {
        throw new HaltConfigError(
          'HALT_INVALID_OPTIONS',
          'RateLimiter: defaultPolicy only applies when policy is a function of the request. Fix: remove defaultPolicy.',
        )
      }
      this.rule = this.compile(options.policy as Policy)
    }
    if (set === undefined && this.rule.shadow) set = [this.rule]
    if (set !== undefined && set.length === 1 && !(set[0] as Rule).shadow) set = undefined
    this.set = set
    this.setStrategy = set?.find((r) => r.policy.keyStrategy !== undefined)?.policy.keyStrategy
    for (const r of set ?? [this.rule]) this.rules.set(r.ns, r)
    this.store = options.store ?? (new InMemoryStore() as unknown as S)
    if (this.store === null || typeof this.store !== 'object' || typeof this.store.consume !== 'function') {
      throw new HaltConfigError('HALT_INVALID_STORE', 'RateLimiter: store must implement consume/peek/reset/clear (e.g. new InMemoryStore()).')
    }
    if (set !== undefined && typeof this.store.consumeSet !== 'function') {
      throw new HaltConfigError(
        'HALT_STORE_NO_SETS',
        'RateLimiter: several policies (or shadow ones) need a store with consumeSet(); this store has none. Fix: use a Halt store (memory, Redis, PostgreSQL, MongoDB, DynamoDB, Memcached) or one limiter per policy.',
      )
    }
    this.http = new HttpRules(options, !this.store.synchronous)
    this.http.validateStrategy(this.rule.name, this.setStrategy ?? this.rule.policy.keyStrategy)
    if (typeof options.cost === 'function') {
      this.costFn = options.cost
    } else if (options.cost !== undefined) {
      const c = options.cost
      if (typeof c !== 'number' || !Number.isFinite(c) || c < 0) {
        throw new HaltConfigError(
          'HALT_INVALID_COST',
          `RateLimiter: cost must be a finite number >= 0 or a function of the request, got ${String(c)}. Fix: cost: 1.`,
        )
      }
      for (const r of set ?? [this.rule]) {
        if (c > r.capacity) {
          throw new HaltConfigError(
            'HALT_COST_EXCEEDS_CAPACITY',
            `RateLimiter: cost ${c} is above the capacity ${r.capacity} of policy '${r.name}', so no request could ever pass. Fix: lower cost or raise the policy's burst/limit.`,
          )
        }
      }
      this.costNumber = c
    }
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new HaltConfigError('HALT_INVALID_CLOCK', 'RateLimiter: clock must be a function returning epoch milliseconds, like Date.now.')
    }
    this.clock = options.clock ?? Date.now
    this.telemetry = options.telemetry === undefined ? undefined : new TelemetryHub(options.telemetry, (c, m) => this.http.warnings.warn(c, m))
    this.penalties = checkPenalties(options.penalties, this.store)
    if (this.penalties !== undefined && set !== undefined) {
      throw new HaltConfigError(
        'HALT_INVALID_OPTIONS',
        'RateLimiter: penalties apply to a limiter with one enforced policy, not to several or shadow ones. Fix: put the penalties on a limiter of their own.',
      )
    }
    this.failover = validateFailover(options)
    this.circuit = new Circuit(this.failover.retryStoreAfter)
    this.deadlines = new Deadlines(this.failover.timeout)
  }

  /** True while the store is considered down (calls take the failure policy). */
  get storeDown(): boolean {
    return this.circuit.isOpen
  }

  /** The policy as given (after defaults are applied by validation); with several policies, the first enforced one. */
  get policy(): Readonly<Policy> {
    return this.rule.policy
  }

  /** Every policy this limiter decides with, in order (one, unless it was given several). */
  get policies(): readonly Readonly<Policy>[] {
    return (this.set ?? [this.rule]).map((r) => r.policy)
  }

  /**
   * Take `cost` units for `key` and decide. Returns a `Decision` directly for a
   * synchronous store (the in-memory one) and a promise otherwise.
   *
   * Given a `RequestView` instead of a key, the request is first checked against
   * `skip`, the path and address exemptions (an exempt request gets
   * `reason: 'exempt'` and never reaches the store), then its policy, key and
   * cost are resolved. Nothing about the request can make this throw.
   *
   * @example
   * limiter.check('user:42', { cost: 5 })
   * limiter.check({ ip: '203.0.113.7', method: 'GET', path: '/api', header: () => undefined })
   */
  check(key: string | RequestView, options?: CheckOptions): MaybePromise<S, Decision> {
    if (typeof key !== 'string') return this.checkRequest(key, options, 'check') as MaybePromise<S, Decision>
    if (this.set !== undefined) {
      const costs = this.costsOf(this.set, options?.cost === undefined ? undefined : checkedCost(options.cost), options)
      return this.runSet(key, this.set, this.clock(), costs, 'check', undefined) as MaybePromise<S, Decision>
    }
    const rule = options?.algorithm === undefined ? this.rule : this.override(options.algorithm)
    const cost = options?.cost === undefined ? rule.cost : checkedCost(options.cost)
    const now = this.clock()
    if (this.penalties !== undefined) return this.penalised(key, rule, now, cost, undefined) as MaybePromise<S, Decision>
    if (this.store.synchronous) {
      const t0 = this.telemetry === undefined ? 0 : performance.now()
      return this.finish(key, cost, rule, this.store.consume(rule.ns, key, rule, now, cost) as Outcome, t0) as MaybePromise<S, Decision>
    }
    return this.remote(key, rule, now, cost, 'check') as MaybePromise<S, Decision>
  }

  /** `check()` reduced to a boolean. */
  allow(key: string | RequestView, options?: CheckOptions): MaybePromise<S, boolean> {
    const d = this.check(key, options) as Decision | Promise<Decision>
    return (d instanceof Promise ? d.then((x) => x.allowed) : d.allowed) as MaybePromise<S, boolean>
  }

  /** What `check()` would say for a request of cost 0, without consuming anything. */
  peek(key: string | RequestView, options?: Pick<CheckOptions, 'algorithm'>): MaybePromise<S, Decision> {
    if (typeof key !== 'string') return this.checkRequest(key, options, 'peek') as MaybePromise<S, Decision>
    if (this.set !== undefined) return this.runSet(key, this.setFor(this.rule, options), this.clock(), [], 'peek', undefined) as MaybePromise<S, Decision>
    const rule = options?.algorithm === undefined ? this.rule : this.override(options.algorithm)
    const now = this.clock()
    if (this.penalties !== undefined) return this.penalisedPeek(key, rule, now, undefined) as MaybePromise<S, Decision>
    if (this.store.synchronous) return toDecision(rule, this.store.peek(rule.ns, key, rule, now) as Outcome) as MaybePromise<S, Decision>
    return this.remote(key, rule, now, 0, 'peek') as MaybePromise<S, Decision>
  }

  /**
   * Forget `key`'s state under this policy (every algorithm and resolved policy
   * used with it). Given a request, forgets the key that request maps to (e.g.
   * after a successful login).
   */
  reset(key: string | RequestView): MaybePromise<S, void> {
    if (typeof key !== 'string') {
      const r = this.resolve(key, undefined, undefined)
      if (r.exempt !== undefined) return (this.store.synchronous ? undefined : Promise.resolve()) as MaybePromise<S, void>
      key = r.key
    }
    const id = key
    const results = [...this.rules.values()].map((r) => this.store.reset(r.ns, id))
    return (this.store.synchronous ? undefined : Promise.all(results).then(() => undefined)) as MaybePromise<S, void>
  }

  /** Forget every key of this policy, and zero the stats. */
  clear(): MaybePromise<S, void> {
    this.allowedCount = 0
    this.blockedCount = 0
    this.shadowBlockedCount = 0
    const results = [...this.rules.values()].map((r) => this.store.clear(r.ns))
    return (this.store.synchronous ? undefined : Promise.all(results).then(() => undefined)) as MaybePromise<S, void>
  }

  /** Counts since creation (or `clear()`); `activeKeys` from the store (every policy in use), -1 when it cannot tell. */
  stats(): MaybePromise<S, LimiterStats> {
    let size: number | Promise<number> = -1
    if (this.store.size !== undefined) {
      const sizes = [...this.rules.values()].map((r) => (this.store.size as (ns: string) => number | Promise<number>)(r.ns))
      size = sizes.every((x) => typeof x === 'number')
        ? (sizes as number[]).reduce((a, b) => a + b, 0)
        : Promise.all(sizes).then((xs) => xs.reduce((a, b) => a + b, 0))
    }
    const make = (activeKeys: number): LimiterStats => ({
      allowed: this.allowedCount,
      blocked: this.blockedCount,
      totalChecks: this.allowedCount + this.blockedCount,
      activeKeys,
      shadowBlocked: this.shadowBlockedCount,
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

  /**
   * Which key a request maps to, and why: the client address (trusted proxies
   * applied), exemptions, policy, strategy and cost, step by step. Consumes nothing.
   *
   * @example
   * limiter.debugKey(view)
   * // { key: 'ip:203.0.113.7', exempt: undefined, clientIp: '203.0.113.7', strategy: 'ip', policy: 'public_api', cost: 1,
   * //   steps: ['peer 10.0.0.2 is a trusted proxy: reading x-forwarded-for right to left', 'hop 203.0.113.7 is not trusted: it is the client', ...] }
   */
  debugKey(req: RequestView): KeyExplanation {
    const steps: string[] = []
    const r = this.resolve(req, undefined, steps)
    return {
      key: r.exempt === undefined ? r.key : undefined,
      exempt: r.exempt,
      clientIp: r.clientIp,
      strategy: r.strategy,
      policy: r.rule.name,
      cost: r.cost,
      steps,
    }
  }

  /** The key a request is limited by, or undefined when it is exempt. Consumes nothing (the HTTP `quota` option uses it). */
  identify(req: RequestView): string | undefined {
    const r = this.resolve(req, undefined, undefined)
    return r.exempt === undefined ? r.key : undefined
  }

  /**
   * Write the rate-limit headers of `d` (a decision of this limiter) with `set`.
   * Adapters call this; `rateLimitHeaders()` gives the same as an object.
   */
  writeHeaders<T>(d: Decision, format: HeaderFormat, target: T, set: SetHeader<T>): void {
    if (format === 'ietf') {
      const window = d.policies === undefined ? this.ruleNamed(d.policy).windowMs / 1000 : (name: string) => this.ruleNamed(name).windowMs / 1000
      writeRateLimitHeaders(d, format, target, set, window, this.clock())
    } else {
      writeRateLimitHeaders(d, format, target, set)
    }
  }

  /** Whether a policy of this name is in use here (the default one, an override, or one a resolver returned). */
  hasPolicy(name: string): boolean {
    if (this.rule.name === name) return true
    for (const r of this.rules.values()) if (r.name === name) return true
    return false
  }

  /** The rule in use with this name (the default rule when none matches). */
  private ruleNamed(name: string): Rule {
    if (this.rule.name === name) return this.rule
    for (const r of this.rules.values()) if (r.name === name) return r
    return this.rule
  }

  private checkRequest(req: RequestView, options: CheckOptions | undefined, operation: 'check' | 'peek'): Decision | Promise<Decision> {
    const r = this.resolve(req, options, undefined)
    if (r.exempt !== undefined) {
      const d = exemptDecision(r.rule)
      if (operation === 'check') this.telemetry?.decision({ key: r.key, cost: 0, decision: d, requestId: requestIdOf(req) })
      return this.store.synchronous ? d : Promise.resolve(d)
    }
    const set = r.rule === this.rule ? this.set : (this.setsByHead.get(r.rule)?.rules ?? (r.rule.shadow ? [r.rule] : undefined))
    if (set !== undefined) {
      const rules = this.setFor(r.rule, options)
      const uniform = options?.cost !== undefined || this.costFn !== undefined ? r.cost : undefined
      return this.runSet(r.key, rules, this.clock(), operation === 'peek' ? [] : this.costsOf(rules, uniform, options), operation, req)
    }
    const rule = options?.algorithm === undefined ? r.rule : this.overrideOf(r.rule, options.algorithm)
    const now = this.clock()
    if (this.penalties !== undefined) return operation === 'check' ? this.penalised(r.key, rule, now, r.cost, req) : this.penalisedPeek(r.key, rule, now, req)
    if (this.store.synchronous) {
      if (operation === 'peek') return toDecision(rule, this.store.peek(rule.ns, r.key, rule, now) as Outcome)
      const t0 = this.telemetry === undefined ? 0 : performance.now()
      return this.finish(r.key, r.cost, rule, this.store.consume(rule.ns, r.key, rule, now, r.cost) as Outcome, t0, undefined, req)
    }
    return this.remote(r.key, rule, now, operation === 'peek' ? 0 : r.cost, operation, req)
  }

  /** Skip, client address, exemptions, policy, key, cost: everything a request check needs, without throwing. */
  private resolve(req: RequestView, options: CheckOptions | undefined, trace: string[] | undefined): Resolved {
    const http = this.http
    if (http.skip !== undefined && http.skipped(req)) {
      trace?.push('skip(req) returned true: exempt')
      return { rule: this.rule, key: '', cost: 0, exempt: 'skip', clientIp: undefined, strategy: http.strategyOf(this.rule.policy.keyStrategy) }
    }
    const client = http.client(req, trace)
    const clientKey = client?.key ?? ''
    const clientIp = client?.ip
    let exempt: ExemptReason | undefined
    if (http.paths.size > 0 && http.paths.matches(req.path)) {
      trace?.push(`path ${String(req.path).slice(0, 200)} is exempt`)
      exempt = 'path'
    } else {
      exempt = http.ipExemption(client)
      if (exempt !== undefined)
        trace?.push(`client ${clientIp} is exempt (${exempt === 'private_ip' ? 'private or loopback address' : 'listed in exemptions'})`)
    }
    if (exempt !== undefined) return { rule: this.rule, key: clientKey, cost: 0, exempt, clientIp, strategy: http.strategyOf(this.rule.policy.keyStrategy) }
    const rule = this.resolver === undefined ? this.rule : this.ruleFor(req, trace)
    const strategy = http.strategyOf(
      rule === this.rule && this.setStrategy !== undefined ? this.setStrategy : (this.setsByHead.get(rule)?.strategy ?? rule.policy.keyStrategy),
    )
    let key = strategy === 'ip' ? (client?.key ?? UNKNOWN_IP_KEY) : http.key(strategy, req, client, trace)
    if (key === undefined) {
      const missing = http.onMissing
      if (missing === 'allow') {
        trace?.push(`strategy '${strategy}' found no identity and onMissingIdentity is 'allow': exempt`)
        return { rule, key: clientKey, cost: 0, exempt: 'no_identity', clientIp, strategy }
      }
      key = missing === 'shared' ? ANONYMOUS_KEY : (client?.key ?? UNKNOWN_IP_KEY)
      trace?.push(`strategy '${strategy}' found no identity: onMissingIdentity '${missing}' gives ${key}`)
    }
    trace?.push(`key ${key} under policy '${rule.name}'`)
    const cost = this.costOf(req, rule, options)
    return { rule, key, cost, exempt: undefined, clientIp, strategy }
  }

  /** The policy a resolver picks for `req`, compiled once per distinct policy. Never throws. */
  private ruleFor(req: RequestView, trace: string[] | undefined): Rule {
    let p: Policy | readonly Policy[] | undefined | null
    try {
      p = (this.resolver as PolicyResolver)(req)
    } catch (e) {
      this.resolverFailed(`threw (${e instanceof Error ? e.message : String(e)})`)
      trace?.push('the policy function threw: default policy')
      return this.rule
    }
    if (p === undefined || p === null) {
      trace?.push('the policy function returned no policy: default policy')
      return this.rule
    }
    if (typeof p !== 'object') {
      this.resolverFailed(`returned ${typeof p}, not a policy`)
      return this.rule
    }
    let rule = this.resolved.get(p)
    if (rule !== undefined) return rule
    const content = Array.isArray(p)
      ? `[${(p as Policy[]).map((x) => (x !== null && typeof x === 'object' ? policyContent(x) : String(x))).join('\n')}]`
      : policyContent(p as Policy)
    rule = this.byContent.get(content)
    if (rule === undefined && Array.isArray(p)) {
      rule = this.compileResolvedSet(p as readonly Policy[])
      if (this.byContent.size >= 1000) this.byContent.clear()
      this.byContent.set(content, rule)
    } else if (rule === undefined) {
      p = p as Policy
      try {
        rule = this.compile(p)
        if (rule.shadow && typeof this.store.consumeSet !== 'function') throw new Error(`policy '${rule.name}' is shadow but the store has no consumeSet()`)
        const strategy = this.http.strategyOf(rule.policy.keyStrategy)
        if (strategy === 'custom' && this.http.keyExtractor === undefined)
          throw new Error(`policy '${rule.name}' uses keyStrategy 'custom' but no keyExtractor is set`)
        const known = this.rules.get(rule.ns)
        if (known !== undefined && policyContent(known.policy) === content) rule = known
        else this.rules.set(rule.ns, rule)
      } catch (e) {
        this.resolverFailed(`returned an invalid policy (${e instanceof Error ? e.message : String(e)})`)
        rule = this.rule
      }
      if (this.byContent.size >= 1000) this.byContent.clear()
      this.byContent.set(content, rule)
    }
    this.resolved.set(p, rule)
    return rule
  }

  /** A set a resolver returned, compiled: its head rule (first enforced), or the default rule when it is invalid. */
  private compileResolvedSet(policies: readonly Policy[]): Rule {
    try {
      const rules = compileSet(policies, this.shadowMode)
      if (typeof this.store.consumeSet !== 'function') throw new Error('several policies need a store with consumeSet()')
      if (this.penalties !== undefined) throw new Error('penalties apply to one enforced policy, not to a set')
      const strategy = rules.find((r) => r.policy.keyStrategy !== undefined)?.policy.keyStrategy
      if (this.http.strategyOf(strategy) === 'custom' && this.http.keyExtractor === undefined)
        throw new Error(`a policy uses keyStrategy 'custom' but no keyExtractor is set`)
      for (const r of rules) if (!this.rules.has(r.ns)) this.rules.set(r.ns, r)
      const head = rules.find((r) => !r.shadow) ?? (rules[0] as Rule)
      this.setsByHead.set(head, { rules, strategy })
      return head
    } catch (e) {
      this.resolverFailed(`returned an invalid set of policies (${e instanceof Error ? e.message : String(e)})`)
      return this.rule
    }
  }

  private resolverFailed(what: string): void {
    this.http.warnings.warn(
      WarningCode.POLICY_RESOLVER_FAILED,
      `the policy function ${what}; the request was checked under the default policy '${this.rule.name}'. This is reported once.`,
    )
  }

  /** Explicit `options.cost` (validated: a programming error throws), else the cost option, else the policy's cost. */
  private costOf(req: RequestView, rule: Rule, options: CheckOptions | undefined): number {
    if (options?.cost !== undefined) return checkedCost(options.cost)
    if (this.costFn === undefined) return this.costNumber ?? rule.cost
    let c: unknown
    try {
      c = this.costFn(req)
    } catch (e) {
      c = e
    }
    if (typeof c === 'number' && Number.isFinite(c) && c >= 0) return c
    this.http.warnings.warn(
      WarningCode.INVALID_REQUEST_COST,
      `the cost function ${c instanceof Error ? `threw (${c.message})` : `returned ${typeof c === 'number' ? String(c) : typeof c}`}, not a finite number >= 0; the policy's cost (${rule.cost}) was used. This is reported once.`,
    )
    return rule.cost
  }

  private overrideOf(rule: Rule, name: AlgorithmName): Rule {
    if (rule === this.rule) return this.override(name)
    if (name === (rule.policy.algorithm ?? 'token_bucket')) return rule
    const id = `${rule.ns}>${name}`
    let r = this.overrides.get(id)
    if (r === undefined) {
      r = rule.withAlgorithm(name)
      this.overrides.set(id, r)
      this.rules.set(r.ns, r)
    }
    return r
  }

  private finish(key: string, cost: number, rule: Rule, o: Outcome, t0: number, storeError?: OnStoreError, request?: RequestView): Decision {
    const d = toDecision(rule, o)
    if (o.reason === 'limit' && this.penalties?.isPenalisedRule(rule)) d.reason = 'penalty'
    this.record(key, cost, d, t0, storeError, request)
    if (this.telemetry?.hasNearLimit === true) this.nearLimit(key, cost, rule, d, request)
    return d
  }

  /**
   * A check under penalties: read the key's penalty, check under the scaled rule while it runs, and record a
   * violation when the request is blocked. A failing penalty store never fails the request: the penalty is skipped.
   */
  private penalised(key: string, rule: Rule, now: number, cost: number, request: RequestView | undefined): Decision | Promise<Decision> {
    const pm = this.penalties as PenaltyManager<Store>
    const t0 = this.telemetry === undefined ? 0 : performance.now() // the penalty read is part of the check's time
    const decide = (active: boolean): Decision | Promise<Decision> => {
      const r = active ? pm.penalised(rule) : rule
      const d = this.store.synchronous
        ? this.finish(key, cost, r, this.store.consume(r.ns, key, r, now, cost) as Outcome, t0, undefined, request)
        : this.remote(key, r, now, cost, 'check', request)
      return d instanceof Promise ? d.then(violation) : violation(d)
    }
    const violation = (d: Decision): Decision | Promise<Decision> => {
      if (d.allowed || (d.reason !== 'limit' && d.reason !== 'cooldown' && d.reason !== 'penalty')) return d
      const v = attempt(() => pm.recordViolation(key, 1, now))
      return v instanceof Promise ? v.then(() => d) : d
    }
    const p = attempt(() => pm.getPenalty(key, now))
    if (p instanceof Promise) return p.then((x) => decide(x?.isActive(now) ?? false))
    return decide(p?.isActive(now) ?? false)
  }

  /** A peek under penalties: what a check would say now, under the scaled rule while the key's penalty runs. */
  private penalisedPeek(key: string, rule: Rule, now: number, request: RequestView | undefined): Decision | Promise<Decision> {
    const pm = this.penalties as PenaltyManager<Store>
    const peek = (active: boolean): Decision | Promise<Decision> => {
      const r = active ? pm.penalised(rule) : rule
      const d = this.store.synchronous ? toDecision(r, this.store.peek(r.ns, key, r, now) as Outcome) : this.remote(key, r, now, 0, 'peek', request)
      const mark = (x: Decision): Decision => {
        if (active && x.reason === 'limit') x.reason = 'penalty'
        return x
      }
      return d instanceof Promise ? d.then(mark) : mark(d)
    }
    const p = attempt(() => pm.getPenalty(key, now))
    if (p instanceof Promise) return p.then((x) => peek(x?.isActive(now) ?? false))
    return peek(p?.isActive(now) ?? false)
  }

  /** A policy compiled, shadow when the whole limiter is. */
  private compile(p: Policy): Rule {
    return compilePolicy(this.shadowMode && p !== null && typeof p === 'object' ? { ...p, mode: 'shadow' } : p)
  }

  /** The rules a check of a set runs: the limiter's set, or a resolver's shadow policy alone. No algorithm override. */
  private setFor(rule: Rule, options: Pick<CheckOptions, 'algorithm'> | undefined): readonly Rule[] {
    noAlgorithmOverride(options)
    return rule === this.rule && this.set !== undefined ? this.set : (this.setsByHead.get(rule)?.rules ?? [rule])
  }

  /** Each rule's cost: one given for the request (explicit, or the limiter's cost option), else each policy's own. */
  private costsOf(rules: readonly Rule[], given: number | undefined, options: CheckOptions | undefined): number[] {
    noAlgorithmOverride(options)
    const c = given ?? this.costNumber
    return rules.map((r) => c ?? r.cost)
  }

  /** A check or peek of a set, on a synchronous or a remote store. */
  private runSet(
    key: string,
    rules: readonly Rule[],
    now: number,
    costs: readonly number[],
    operation: 'check' | 'peek',
    request: RequestView | undefined,
  ): Decision | Promise<Decision> {
    if (this.store.synchronous) {
      const t0 = this.telemetry === undefined ? 0 : performance.now()
      if (operation === 'peek')
        return combine(
          rules,
          rules.map((r) => ({ ...(this.store.peek(r.ns, key, r, now) as Outcome) })),
        )
      const outcomes = (this.store as SyncStore).consumeSet?.(key, rules, now, costs) as Outcome[]
      return this.finishSet(key, rules, costs, outcomes, t0, undefined, request)
    }
    return this.remoteSet(key, rules, now, costs, operation, request)
  }

  private async remoteSet(
    key: string,
    rules: readonly Rule[],
    now: number,
    costs: readonly number[],
    operation: 'check' | 'peek',
    request: RequestView | undefined,
  ): Promise<Decision> {
    const t0 = this.telemetry === undefined ? 0 : performance.now()
    if (this.circuit.allows(now)) {
      try {
        const store = this.store
        const call =
          operation === 'check'
            ? (store.consumeSet?.(key, rules, now, costs) as Promise<Outcome[]>)
            : Promise.all(rules.map((r) => store.peek(r.ns, key, r, now)))
        const outcomes = await this.deadlines.run(call)
        this.circuit.success()
        return operation === 'check' ? this.finishSet(key, rules, costs, outcomes, t0, undefined, request) : combine(rules, outcomes)
      } catch (error) {
        this.circuit.failure(this.clock())
        this.telemetry?.error({ error, key, policy: this.rule.name, operation, action: this.failover.onStoreError })
      }
    }
    const mode = this.failover.onStoreError
    if (mode === 'fallback' || rules.every((r) => r.shadow)) {
      // A set whose every policy is shadow never rejects: while the store is down it is evaluated in memory.
      this.fallbackStore ??= new InMemoryStore()
      const fb = this.fallbackStore
      if (operation === 'peek')
        return combine(
          rules,
          rules.map((r) => ({ ...fb.peek(r.ns, key, r, now) })),
        )
      return this.finishSet(key, rules, costs, fb.consumeSet(key, rules, now, costs), t0, 'fallback', request)
    }
    const primary = rules.find((r) => !r.shadow) as Rule
    return this.degraded(key, primary, now, operation === 'check' ? (costs[rules.indexOf(primary)] as number) : 0, operation, t0, request)
  }

  /** Count and report a set's decision: the enforced one, each shadow policy's, near-limit signals. */
  private finishSet(
    key: string,
    rules: readonly Rule[],
    costs: readonly number[],
    outcomes: readonly Outcome[],
    t0: number,
    storeError: OnStoreError | undefined,
    request: RequestView | undefined,
  ): Decision {
    const d = combine(rules, outcomes)
    const policies = d.policies as Decision[]
    const cost = (name: string) => costs[rules.findIndex((r) => r.name === name)] as number
    if (d.shadow === true) this.allowedCount++
    else this.record(key, cost(d.policy), d, t0, storeError, request)
    const t = this.telemetry
    // A shadow policy consumed only if every policy admitted (evaluateSet).
    const all = policies.every((p) => p.allowed)
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i] as Rule
      const p = policies[i] as Decision
      if (!rule.shadow) {
        if (d.allowed && t?.hasNearLimit === true) this.nearLimit(key, costs[i] as number, rule, p, request)
        continue
      }
      if (!p.allowed) this.shadowBlockedCount++
      if (t !== undefined) {
        const event: DecisionEvent = { key, cost: costs[i] as number, decision: p, shadow: true, durationMs: performance.now() - t0 }
        if (storeError !== undefined) event.storeError = storeError
        if (request !== undefined) event.requestId = requestIdOf(request)
        t.decision(event)
      }
      if (all && t?.hasNearLimit === true) this.nearLimit(key, costs[i] as number, rule, p, request)
    }
    return d
  }

  /** Fire `onNearLimit` when this admission took `rule` from below `nearLimit` of its capacity to it or beyond. */
  private nearLimit(key: string, cost: number, rule: Rule, d: Decision, request: RequestView | undefined): void {
    if (!d.allowed || cost <= 0 || d.reason !== undefined) return
    const threshold = rule.capacity * this.nearFraction
    const used = rule.capacity - d.remaining
    if (used + 1e-9 < threshold || used - cost >= threshold) return
    const event: DecisionEvent = { key, cost, decision: d }
    if (rule.shadow) event.shadow = true
    if (request !== undefined) event.requestId = requestIdOf(request)
    this.telemetry?.nearLimit(event)
  }

  /** Count a decision and tell telemetry. `t0`: `performance.now()` before the store call (latency includes the store). */
  private record(key: string, cost: number, d: Decision, t0: number, storeError?: OnStoreError, request?: RequestView): Decision {
    if (d.allowed) this.allowedCount++
    else this.blockedCount++
    if (this.telemetry !== undefined) {
      const event: DecisionEvent = { key, cost, decision: d, durationMs: performance.now() - t0 }
      if (storeError !== undefined) event.storeError = storeError
      if (request !== undefined) event.requestId = requestIdOf(request)
      this.telemetry.decision(event)
    }
    return d
  }

  /** A call to an asynchronous store, under the timeout, the circuit breaker and the failure policy. */
  private async remote(key: string, rule: Rule, now: number, cost: number, operation: 'check' | 'peek', request?: RequestView): Promise<Decision> {
    const t0 = this.telemetry === undefined ? 0 : performance.now()
    if (this.circuit.allows(now)) {
      try {
        const call = operation === 'check' ? this.store.consume(rule.ns, key, rule, now, cost) : this.store.peek(rule.ns, key, rule, now)
        const o = await this.deadlines.run(call)
        this.circuit.success()
        return operation === 'check' ? this.finish(key, cost, rule, o, t0, undefined, request) : toDecision(rule, o)
      } catch (error) {
        this.circuit.failure(this.clock())
        this.telemetry?.error({ error, key, policy: rule.name, operation, action: this.failover.onStoreError })
      }
    }
    return this.degraded(key, rule, now, cost, operation, t0, request)
  }

  /** The decision while the store is down, as `onStoreError` says. */
  private degraded(key: string, rule: Rule, now: number, cost: number, operation: 'check' | 'peek', t0: number, request?: RequestView): Decision {
    const mode = this.failover.onStoreError
    if (mode === 'fallback') {
      this.fallbackStore ??= new InMemoryStore()
      const o = operation === 'check' ? this.fallbackStore.consume(rule.ns, key, rule, now, cost) : this.fallbackStore.peek(rule.ns, key, rule, now)
      return operation === 'check' ? this.finish(key, cost, rule, o, t0, mode, request) : toDecision(rule, o)
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
    return operation === 'check' ? this.record(key, cost, d, t0, mode, request) : d
  }

  private override(name: AlgorithmName): Rule {
    if (name === this.rule.policy.algorithm) return this.rule
    let rule = this.overrides.get(name)
    if (rule === undefined) {
      rule = this.rule.withAlgorithm(name)
      this.overrides.set(name, rule)
      this.rules.set(rule.ns, rule)
    }
    return rule
  }
}

/** A penalty store call: its result, or undefined when it failed (a promise of the same for remote stores). */
function attempt<T>(f: () => T | Promise<T>): T | undefined | Promise<T | undefined> {
  try {
    const r = f()
    return r instanceof Promise ? r.catch(() => undefined) : r
  } catch {
    return undefined
  }
}

function checkPenalties(p: PenaltyManager<Store> | undefined, store: Store): PenaltyManager<Store> | undefined {
  if (p === undefined) return undefined
  if (p === null || typeof p !== 'object' || typeof p.recordViolation !== 'function' || typeof p.penalised !== 'function') {
    throw new HaltConfigError(
      'HALT_INVALID_PENALTY',
      "RateLimiter: penalties must be a PenaltyManager. Fix: penalties: new PenaltyManager({ config: { threshold: 10, duration: '5m' } }).",
    )
  }
  if (store.synchronous && !p.store.synchronous) {
    throw new HaltConfigError(
      'HALT_INVALID_PENALTY',
      'RateLimiter: the limiter answers synchronously (in-memory store) but its PenaltyManager store is asynchronous. Fix: give both the same kind of store (e.g. both in memory, or both in Redis).',
    )
  }
  return p
}

/** The decision of an exempt request: admitted, never counted, no headers. */
function exemptDecision(rule: Rule): Decision {
  return { allowed: true, limit: rule.limit, remaining: Math.floor(rule.capacity), resetAt: 0, retryAfter: 0, policy: rule.name, reason: 'exempt', delay: 0 }
}

/** A policy's content, as a cache key for resolvers that return fresh objects. */
function policyContent(p: Policy): string {
  return `${String(p.name)}|${String(p.limit)}|${String(p.window)}|${String(p.burst)}|${String(p.algorithm)}|${String(p.cost)}|${String(p.blockDuration)}|${String(p.precision)}|${String(p.leakyMode)}|${String(p.keyStrategy)}|${String(p.mode)}`
}

/**
 * A set's decision: each policy's, and the one that binds, the most restrictive enforced decision (`moreRestrictive`:
 * a rejection with the longest wait, else the fewest remaining), with the longest shaping delay. When every
 * policy is shadow the set admits: the most restrictive shadow decision's numbers, `shadow: true`.
 */
export function combine(rules: readonly Rule[], outcomes: readonly Outcome[]): Decision {
  const policies: Decision[] = new Array(rules.length)
  let best: Decision | undefined
  let bestShadow: Decision | undefined
  let delay = 0
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i] as Rule
    const d = toDecision(rule, outcomes[i] as Outcome)
    policies[i] = d
    if (rule.shadow) {
      d.shadow = true
      if (bestShadow === undefined || moreRestrictive(d, bestShadow)) bestShadow = d
    } else {
      if (best === undefined || moreRestrictive(d, best)) best = d
      if (d.delay > delay) delay = d.delay
    }
  }
  // Object literals, not spreads: a spread takes V8's slow path (several µs per decision).
  if (best === undefined) {
    const b = bestShadow as Decision
    return {
      allowed: true,
      limit: b.limit,
      remaining: b.remaining,
      resetAt: b.resetAt,
      retryAfter: 0,
      policy: b.policy,
      reason: undefined,
      delay: 0,
      policies,
      shadow: true,
    }
  }
  const b = best
  return {
    allowed: b.allowed,
    limit: b.limit,
    remaining: b.remaining,
    resetAt: b.resetAt,
    retryAfter: b.retryAfter,
    policy: b.policy,
    reason: b.reason,
    delay: b.allowed ? delay : 0,
    policies,
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

/** A set has no per-request algorithm: a programming error, reported at once. */
function noAlgorithmOverride(options: Pick<CheckOptions, 'algorithm'> | undefined): void {
  if (options?.algorithm !== undefined) {
    throw new HaltConfigError(
      'HALT_INVALID_OPTIONS',
      'check(): the algorithm option does not apply to a limiter with several policies or shadow ones. Fix: set algorithm on each policy.',
    )
  }
}

function checkedCost(cost: unknown): number {
  if (typeof cost === 'number' && Number.isFinite(cost) && cost >= 0) return cost
  throw new HaltConfigError('HALT_INVALID_COST', `check(): cost must be a finite number >= 0, got ${String(cost)}.`)
}
