// RedisStore: the algorithms run inside Redis by the shared Lua scripts of spec/redis, one round trip per check.
import { HaltConfigError } from '../../core/errors.js'
import type { Rule } from '../../core/policy.js'
import type { Store } from '../../core/store.js'
import type { Outcome } from '../../core/types.js'
import { type RedisAdapter, type RedisClient, toAdapter } from './adapters.js'
import { BlockedKeyCache } from './cache.js'
import { escapeKeyPart, keySlot, scanPattern, storageKey } from './keys.js'
import { type KernelName, SCRIPTS, SET_SCRIPT, SET_SHA1, SHA1 } from './scripts.js'

export interface RedisStoreOptions {
  /**
   * An ioredis `Redis` or `Cluster`, a node-redis client or cluster (`redis` package), or a `RedisAdapter`.
   * The store does not own it: close it yourself. See docs/redis.md for the client settings Halt recommends.
   */
  client: RedisClient
  /** Prepended to every key. No `{` or `}` (they would move the Cluster hash tag). Default `'halt:'`. */
  prefix?: string
  /**
   * Whose clock decides. `'client'` (default): the `now` the limiter passes (its clock). `'server'`: Redis's
   * `TIME`, so app servers whose clocks disagree still share one timeline (docs/redis.md weighs the two).
   */
  time?: 'client' | 'server'
  /**
   * Checks made in the same turn of the event loop (the requests that arrived together) while script calls are in
   * flight, on the same policy (and on a Cluster, the same hash slot), go to Redis together: one script call per up
   * to this many keys; with nothing in flight a check goes at once. `true` (default) is 32: under load, several
   * calls are in flight at once, so that Redis runs one while this process reads the answer to another.
   * `false` sends one call per check.
   */
  batch?: boolean | number
  /**
   * Remember keys Redis rejected and answer them in process, without a round trip, while they stay rejected
   * (cooldowns; over-limit keys of policies without `blockDuration`). `true` holds up to 10,000 keys. Default off.
   */
  blockedKeyCache?: boolean | { maxKeys?: number }
  /**
   * Milliseconds a key is kept after its state is back to fresh (the outcome's `expiresAtMs`). Default 0: it
   * expires right then. A grace of about the largest clock difference between your app servers (with
   * `time: 'client'`) keeps a server whose clock is behind from seeing a key vanish before its time.
   */
  expiryGraceMs?: number
}

/** Counters for tests, benchmarks and dashboards. */
export interface RedisStoreCounters {
  /** Script calls sent to Redis (round trips, including NOSCRIPT reloads). */
  calls: number
  /** Checks and peeks answered by Redis. */
  checks: number
  /** Times a script was sent in full (first use, or NOSCRIPT after a restart, a failover or SCRIPT FLUSH). */
  scriptLoads: number
  /** Checks answered by the blocked-key cache without a round trip. */
  cacheHits: number
}

const DEFAULT_BATCH = 32
const MAX_BATCH = 10_000
const REASONS = [undefined, 'limit', 'cooldown', 'cost_exceeds_capacity'] as const

interface Script {
  readonly text: string
  readonly sha: string
  /** Sent with EVAL once by this store; afterwards EVALSHA (and EVAL again on NOSCRIPT). */
  loaded: boolean
}

/** What the store derives once per Rule. */
interface RuleInfo {
  readonly rule: Rule
  readonly script: Script
  /** ARGV[2..8]: limit, window_ms, burst, block_ms, precision, shaping, expiry_grace_ms. */
  readonly params: readonly string[]
  /** The policy's numbers: two Rule objects of one policy share blocked-key cache entries. */
  readonly signature: string
  /** `<prefix><escaped rule.ns>:{`: a key is this, the escaped identity, and `}`. */
  readonly keyHead: string
  /** The batch being filled in this turn of the event loop (single server), or one per hash slot (Cluster). */
  open: Batch | undefined
  openBySlot: Map<number, Batch> | undefined
}

/** Checks that go to Redis together (same script, same `now`, on a Cluster the same slot). */
class Batch {
  readonly keys: string[] = []
  readonly costs: string[] = []
  readonly resolves: ((o: Outcome) => void)[] = []
  readonly rejects: ((e: unknown) => void)[] = []
  constructor(
    readonly info: RuleInfo,
    /** ARGV[1] ('' with the server's clock), and the caller's `now` (for the cache's clock offset). */
    readonly nowArg: string,
    readonly now: number,
    readonly slot: number,
  ) {}
}

/**
 * A store in Redis (single server or Cluster). Each algorithm runs inside Redis as the Lua script of
 * `spec/redis/` (the very scripts the Python SDK loads), so every check is one atomic round trip:
 * EVALSHA, with the script sent again when Redis answers NOSCRIPT.
 *
 * @example
 * import { Redis } from 'ioredis'
 * import { RateLimiter } from 'halt'
 * import { RedisStore, ioredisOptions } from 'halt/redis'
 *
 * const redis = new Redis(process.env.REDIS_URL!, ioredisOptions)
 * const limiter = new RateLimiter({
 *   store: new RedisStore({ client: redis }),
 *   policy: { name: 'api', limit: 100, window: '1m' },
 *   timeout: 100,
 *   onStoreError: 'fallback',
 * })
 * const d = await limiter.check('user:42')
 */
export class RedisStore implements Store {
  readonly synchronous = false
  readonly prefix: string
  readonly time: 'client' | 'server'
  readonly counters: RedisStoreCounters = { calls: 0, checks: 0, scriptLoads: 0, cacheHits: 0 }
  private readonly adapter: RedisAdapter
  private readonly maxBatch: number
  private readonly graceArg: string
  private readonly cache: BlockedKeyCache | undefined
  private readonly scripts: Record<KernelName, Script>
  private readonly infos = new WeakMap<Rule, RuleInfo>()
  private readonly setScript: Script = { text: SET_SCRIPT, sha: SET_SHA1, loaded: false }
  /**
   * Batches opened in this turn of the event loop, sent by a `setImmediate` once its I/O callbacks have run: the
   * checks of every request that arrived in this turn go together.
   */
  private opened: Batch[] = []
  /** Script calls sent and not answered yet. */
  private inflight = 0

  constructor(options: RedisStoreOptions) {
    if (options === null || typeof options !== 'object' || options.client === undefined) {
      throw new HaltConfigError('HALT_INVALID_REDIS_CLIENT', 'RedisStore needs a client. Fix: new RedisStore({ client: new Redis(url) }).')
    }
    this.adapter = toAdapter(options.client)
    const prefix = options.prefix ?? 'halt:'
    if (typeof prefix !== 'string' || prefix.length === 0 || /[{}]/.test(prefix)) {
      throw new HaltConfigError(
        'HALT_INVALID_REDIS_PREFIX',
        `RedisStore: prefix must be a non-empty string without '{' or '}' (they would change the Redis Cluster hash tag), got ${JSON.stringify(prefix)}. Fix: prefix: 'halt:'.`,
      )
    }
    this.prefix = prefix
    const time = options.time ?? 'client'
    if (time !== 'client' && time !== 'server') {
      throw new HaltConfigError(
        'HALT_INVALID_REDIS_TIME',
        `RedisStore: time must be 'client' (the limiter's clock) or 'server' (Redis TIME), got ${JSON.stringify(time)}.`,
      )
    }
    this.time = time
    const batch = options.batch ?? true
    const maxBatch = batch === true ? DEFAULT_BATCH : batch === false ? 1 : batch
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > MAX_BATCH) {
      throw new HaltConfigError(
        'HALT_INVALID_REDIS_BATCH',
        `RedisStore: batch must be true, false or a whole number of keys from 1 to ${MAX_BATCH}, got ${String(batch)}. Fix: omit it (32).`,
      )
    }
    this.maxBatch = maxBatch
    const grace = options.expiryGraceMs ?? 0
    if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0) {
      throw new HaltConfigError(
        'HALT_INVALID_EXPIRY_GRACE',
        `RedisStore: expiryGraceMs must be a whole number of milliseconds >= 0, got ${String(options.expiryGraceMs)}. Fix: omit it (0) or e.g. 1000.`,
      )
    }
    this.graceArg = String(grace)
    const cacheOption = options.blockedKeyCache ?? false
    const maxKeys = cacheOption === true ? 10_000 : typeof cacheOption === 'object' && cacheOption !== null ? (cacheOption.maxKeys ?? 10_000) : 0
    if ((typeof cacheOption !== 'boolean' && typeof cacheOption !== 'object') || (cacheOption !== false && !(Number.isInteger(maxKeys) && maxKeys >= 1))) {
      throw new HaltConfigError(
        'HALT_INVALID_BLOCKED_KEY_CACHE',
        `RedisStore: blockedKeyCache must be true, false or { maxKeys } with a whole number >= 1, got ${JSON.stringify(cacheOption)}.`,
      )
    }
    this.cache = cacheOption === false ? undefined : new BlockedKeyCache(maxKeys)
    const scripts = {} as Record<KernelName, Script>
    for (const name of Object.keys(SCRIPTS) as KernelName[]) scripts[name] = { text: SCRIPTS[name], sha: SHA1[name], loaded: false }
    this.scripts = scripts
  }

  /** The Redis key holding `id`'s state under namespace `ns` (spec/KEYS.md). */
  key(ns: string, id: string): string {
    return storageKey(this.prefix, ns, id)
  }

  consume(ns: string, id: string, rule: Rule, now: number, cost: number): Promise<Outcome> {
    return this.call(ns, id, rule, now, cost, false)
  }

  peek(ns: string, id: string, rule: Rule, now: number): Promise<Outcome> {
    return this.call(ns, id, rule, now, 0, true)
  }

  /**
   * A limit set in one atomic script call (spec/redis/limit_set.lua) over the policies' keys of `id`, which share
   * the identity's hash slot on a Cluster. Not batched, and not answered by the blocked-key cache: a set's
   * rejection may still write (a cooldown another policy starts).
   */
  consumeSet(id: string, rules: readonly Rule[], now: number, costs: readonly number[]): Promise<Outcome[]> {
    const keys = rules.map((r) => this.key(r.ns, id))
    if (this.adapter.cluster && keys.length > 1 && id === '') {
      return Promise.reject(new Error('RedisStore: a limit set on Redis Cluster needs a non-empty identity (its keys share a hash slot through it)'))
    }
    const args: string[] = [this.time === 'server' ? '' : String(now), this.graceArg]
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i] as Rule
      args.push(r.algorithm.name, String(r.limit), String(r.windowMs), String(r.burst), String(r.blockMs), String(r.precision))
      args.push(r.shaping ? '1' : '0', r.shadow ? '1' : '0', String(costs[i]))
    }
    const script = this.setScript
    const settle = (reply: unknown): Outcome[] => {
      if (!Array.isArray(reply) || reply.length !== 2 + 6 * rules.length) {
        throw new Error(`RedisStore: unexpected reply to the limit-set script: ${JSON.stringify(reply)?.slice(0, 200)}`)
      }
      this.counters.checks++
      const outcomes: Outcome[] = new Array(rules.length)
      for (let i = 0, r = 2; i < rules.length; i++, r += 6) {
        outcomes[i] = outcomeAt(reply, r)
      }
      return outcomes
    }
    const load = () => {
      this.counters.calls++
      this.counters.scriptLoads++
      return call(() => this.adapter.eval(script.text, keys, args)).then((reply) => {
        script.loaded = true
        return settle(reply)
      })
    }
    if (!script.loaded) return load()
    this.counters.calls++
    return call(() => this.adapter.evalsha(script.sha, keys, args)).then(settle, (error) => {
      if (String((error as Error)?.message).startsWith('NOSCRIPT')) return load()
      throw error
    })
  }

  async reset(ns: string, id: string): Promise<void> {
    const key = this.key(ns, id)
    this.cache?.delete(key)
    await this.adapter.del(key)
  }

  /** Delete every key of `ns` (SCAN on every master), or every key under the prefix when no `ns` is given. */
  async clear(ns?: string): Promise<void> {
    this.cache?.deletePrefix(ns === undefined ? this.prefix : `${this.prefix}${escapeKeyPart(ns)}:{`)
    await this.adapter.deleteMatching(scanPattern(this.prefix, ns))
  }

  /** Send what is queued now. The client stays open: it belongs to the caller. */
  close(): void {
    this.flush()
  }

  private call(ns: string, id: string, rule: Rule, now: number, cost: number, peek: boolean): Promise<Outcome> {
    const info = this.info(rule)
    const key = ns === rule.ns ? `${info.keyHead}${escapeKeyPart(id)}}` : this.key(ns, id)
    if (this.cache !== undefined) {
      const o = this.cache.answer(key, rule, info.signature, now, cost, peek)
      if (o !== undefined) {
        this.counters.cacheHits++
        return Promise.resolve(o)
      }
    }
    const nowArg = this.time === 'server' ? '' : String(now)
    // Nothing in flight and nothing queued: no call to coalesce with, so this check goes at once (as Nagle's
    // algorithm sends when nothing is unacknowledged). Checks made while calls are in flight wait for the batch.
    const alone = this.maxBatch === 1 || (this.inflight === 0 && this.opened.length === 0)
    const b = alone ? new Batch(info, nowArg, now, 0) : this.batchFor(info, key, nowArg, now)
    b.keys.push(key)
    b.costs.push(peek ? 'peek' : cost === 1 ? '1' : String(cost))
    const p = new Promise<Outcome>((resolve, reject) => {
      b.resolves.push(resolve)
      b.rejects.push(reject)
    })
    if (alone) this.send(b, 0, 1)
    return p
  }

  /** The batch a check joins: the one open for its rule (and slot) in this turn, unless `now` differs. */
  private batchFor(info: RuleInfo, key: string, nowArg: string, now: number): Batch {
    const slot = this.adapter.cluster ? keySlot(key) : 0
    let b = this.adapter.cluster ? info.openBySlot?.get(slot) : info.open
    if (b === undefined || b.nowArg !== nowArg) {
      b = new Batch(info, nowArg, now, slot)
      if (!this.adapter.cluster) info.open = b
      else {
        if (info.openBySlot === undefined) info.openBySlot = new Map()
        info.openBySlot.set(slot, b)
      }
      if (this.opened.length === 0) setImmediate(this.flush)
      this.opened.push(b)
    }
    return b
  }

  private readonly flush = (): void => {
    const opened = this.opened
    if (opened.length === 0) return
    this.opened = []
    for (const b of opened) {
      b.info.open = undefined
      b.info.openBySlot?.clear()
    }
    for (const b of opened) this.split(b)
  }

  /**
   * Send a batch in calls of at most `maxBatch` keys, of even sizes: 100 checks of one turn go as 4 calls of
   * 25, which Redis runs one after another while this process reads the first answers.
   */
  private split(b: Batch): void {
    const n = b.keys.length
    if (n <= this.maxBatch) {
      this.send(b, 0, n)
      return
    }
    const calls = Math.ceil(n / this.maxBatch)
    const size = Math.ceil(n / calls)
    for (let from = 0; from < n; from += size) this.send(b, from, Math.min(n, from + size))
  }

  private info(rule: Rule): RuleInfo {
    let info = this.infos.get(rule)
    if (info === undefined) {
      const params = [rule.limit, rule.windowMs, rule.burst, rule.blockMs, rule.precision].map(String)
      params.push(rule.shaping ? '1' : '0', this.graceArg)
      const name = rule.algorithm.name as KernelName
      info = {
        rule,
        script: this.scripts[name],
        params,
        signature: `${name}:${params.join(',')}`,
        keyHead: `${this.prefix}${escapeKeyPart(rule.ns)}:{`,
        open: undefined,
        openBySlot: undefined,
      }
      this.infos.set(rule, info)
    }
    return info
  }

  /**
   * One script call for the checks `from..to` of a batch: EVAL the first time this store uses the script,
   * EVALSHA afterwards, and EVAL again when Redis answers NOSCRIPT (a restart, SCRIPT FLUSH, a failover,
   * a Cluster node not seen yet).
   */
  private send(b: Batch, from: number, to: number): void {
    const script = b.info.script
    const params = b.info.params
    const keys = from === 0 && to === b.keys.length ? b.keys : b.keys.slice(from, to)
    const args: string[] = new Array(1 + params.length + keys.length)
    args[0] = b.nowArg
    for (let i = 0; i < params.length; i++) args[1 + i] = params[i] as string
    for (let i = from; i < to; i++) args[1 + params.length + i - from] = b.costs[i] as string
    this.inflight++
    const fail = (error: unknown) => {
      for (let i = from; i < to; i++) (b.rejects[i] as (e: unknown) => void)(error)
    }
    const done = (reply: unknown) => {
      try {
        this.settle(b, from, to, reply)
      } catch (error) {
        fail(error)
      }
    }
    const load = () => {
      this.counters.calls++
      this.counters.scriptLoads++
      call(() => this.adapter.eval(script.text, keys, args)).then(
        (reply) => {
          this.inflight--
          script.loaded = true
          done(reply)
        },
        (error) => {
          this.inflight--
          fail(error)
        },
      )
    }
    if (!script.loaded) {
      load()
      return
    }
    this.counters.calls++
    call(() => this.adapter.evalsha(script.sha, keys, args)).then(
      (reply) => {
        this.inflight--
        done(reply)
      },
      (error) => {
        if (String((error as Error)?.message).startsWith('NOSCRIPT')) return load()
        this.inflight--
        fail(error)
      },
    )
  }

  /** Turn the script's reply (`{ now, then 7 values per key }`, spec/redis/README.md) into outcomes. */
  private settle(b: Batch, from: number, to: number, reply: unknown): void {
    const n = to - from
    if (!Array.isArray(reply) || reply.length !== 1 + 7 * n) {
      throw new Error(`RedisStore: unexpected reply to the ${b.info.rule.algorithm.name} script: ${JSON.stringify(reply)?.slice(0, 200)}`)
    }
    this.counters.checks += n
    const offset = num(reply[0]) - b.now
    for (let i = from, r = 1; i < to; i++, r += 7) {
      const o = outcomeAt(reply, r)
      if (!o.allowed && this.cache !== undefined && Array.isArray(reply[r + 6])) {
        const raw = reply[r + 6] as unknown[]
        const state = new Float64Array(raw.length)
        for (let j = 0; j < raw.length; j++) state[j] = num(raw[j])
        this.cache.remember(b.keys[i] as string, b.info.rule, b.info.signature, state, offset)
      }
      ;(b.resolves[i] as (o: Outcome) => void)(o)
    }
  }
}

/** Run a client call; a client that throws instead of rejecting (e.g. when closed) becomes a rejection. */
function call(f: () => Promise<unknown>): Promise<unknown> {
  try {
    return f()
  } catch (error) {
    return Promise.reject(error)
  }
}

/** A number of the reply: an integer reply, or an exact decimal string (fractional values). */
function num(x: unknown): number {
  return typeof x === 'number' ? x : Number(x)
}

/** The six numbers a script returns per check (reason code, remaining, reset, retry, delay, expiry) from `reply[r]` on. */
function outcomeAt(reply: unknown[], r: number): Outcome {
  const code = num(reply[r])
  return {
    allowed: code === 0,
    remaining: num(reply[r + 1]),
    resetAtMs: num(reply[r + 2]),
    retryAfterMs: num(reply[r + 3]),
    reason: REASONS[code],
    delayMs: num(reply[r + 4]),
    expiresAtMs: num(reply[r + 5]),
  }
}
