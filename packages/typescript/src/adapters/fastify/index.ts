// halt/fastify: haltPlugin (app-wide limiter plus per-route `config.halt`) and haltHook for one route, over the shared HTTP layer.
import type { IncomingMessage } from 'node:http'
import type { Decision } from '../../core/types.js'
import { type AdapterOptions, DECISION, Gate, type HttpLimiter, supersedes } from '../../http/gate.js'
import { rejectionBody, rejectionStatus } from '../../http/headers.js'
import { NodeRequestView } from '../node.js'

/** The parts of Fastify's request Halt reads (structural: halt/fastify needs no type from fastify). */
export interface FastifyRequestLike {
  raw: IncomingMessage
  user?: unknown
}

/** The parts of Fastify's reply Halt uses. */
export interface FastifyReplyLike {
  header(name: string, value: string): unknown
  code(statusCode: number): unknown
  type(contentType: string): unknown
  send(payload: string): unknown
}

type Done = (err?: Error) => void
/** A Fastify `onRequest` hook. */
export type HaltHook = (request: FastifyRequestLike, reply: FastifyReplyLike, done: Done) => void

/** `config.halt` of a route: more limiters for this route (added to the app-wide one), or `false` to exempt the route from the app-wide one. */
export type HaltRouteConfig = HttpLimiter | readonly HttpLimiter[] | false

export interface HaltFastifyOptions extends AdapterOptions {
  /** Applied to every route registered after the plugin. Omit to limit only routes with `config.halt`. */
  limiter?: HttpLimiter | readonly HttpLimiter[]
  /** The authenticated user, for the `user` and `composite` strategies. Default `request.user`. */
  getUser?: (request: FastifyRequestLike) => unknown
  /** Send your own rejection (headers and `Retry-After` are already set). Default: 429 with a JSON body. */
  onLimited?: (request: FastifyRequestLike, reply: FastifyReplyLike, decision: Decision) => void
}

interface RouteOptionsLike {
  config?: unknown
  onRequest?: unknown
}

interface FastifyLike {
  addHook(name: 'onRoute', hook: (route: RouteOptionsLike) => void): unknown
}

function setReplyHeader(reply: FastifyReplyLike, name: string, value: string): void {
  reply.header(name, value)
}

const userOfRequest = (r: FastifyRequestLike) => r.user

/**
 * An `onRequest` hook enforcing `limiter` (or several) on the routes it is given to.
 *
 * @example
 * fastify.post('/login', { onRequest: haltHook(new RateLimiter({ policy: presets.AUTH_ENDPOINTS })) }, login)
 */
export function haltHook(limiter: HttpLimiter | readonly HttpLimiter[], options: Omit<HaltFastifyOptions, 'limiter'> = {}): HaltHook {
  const gate = new Gate(limiter, options, 'haltHook')
  const onLimited = options.onLimited
  const userOf = options.getUser ?? userOfRequest

  function finish(d: Decision, request: FastifyRequestLike, reply: FastifyReplyLike, done: Done): void {
    if (d.reason === 'exempt') {
      done()
      return
    }
    const memo = request.raw as IncomingMessage & { [DECISION]?: Decision }
    if (supersedes(d, memo[DECISION])) {
      memo[DECISION] = d
      gate.writeHeaders(d, reply, setReplyHeader)
    }
    if (d.allowed) {
      if (d.delay > 0) setTimeout(done, d.delay * 1000)
      else done()
      return
    }
    if (onLimited !== undefined) {
      onLimited(request, reply, d)
      return
    }
    reply.code(rejectionStatus(d))
    reply.type('application/json; charset=utf-8')
    reply.send(rejectionBody(d))
  }

  return function haltOnRequest(request: FastifyRequestLike, reply: FastifyReplyLike, done: Done): void {
    let d: Decision | Promise<Decision>
    try {
      d = gate.check(new NodeRequestView(request.raw, request, userOf))
    } catch (e) {
      done(e as Error)
      return
    }
    if (d instanceof Promise) {
      d.then((x) => finish(x, request, reply, done)).catch(done)
      return
    }
    finish(d, request, reply, done)
  }
}

function list(x: HttpLimiter | readonly HttpLimiter[]): readonly HttpLimiter[] {
  return Array.isArray(x) ? x : [x as HttpLimiter]
}

/**
 * Fastify plugin: the app-wide `limiter` on every route registered after it,
 * plus each route's `config.halt` (both apply; the headers describe the most
 * restrictive). Not encapsulated, like a `fastify-plugin`.
 *
 * @example
 * await fastify.register(haltPlugin, { limiter: new RateLimiter({ policy: presets.PUBLIC_API }) })
 * fastify.post('/login', { config: { halt: authLimiter } }, login)
 * fastify.get('/metrics', { config: { halt: false } }, metrics)
 */
export function haltPlugin(fastify: FastifyLike, options: HaltFastifyOptions, done: Done): void {
  const global = options.limiter === undefined ? [] : list(options.limiter)
  const hookOptions = { headers: options.headers, quota: options.quota, getUser: options.getUser, onLimited: options.onLimited }
  if (global.length > 0) new Gate(global, hookOptions, 'haltPlugin') // validate now, not at the first route
  const shared = global.length > 0 ? haltHook(global, hookOptions) : undefined
  fastify.addHook('onRoute', (route) => {
    const cfg = (route.config as { halt?: HaltRouteConfig } | undefined)?.halt
    let hook: HaltHook | undefined
    if (cfg === false) hook = undefined
    else if (cfg === undefined) hook = shared
    else hook = haltHook([...global, ...list(cfg)], hookOptions)
    if (hook === undefined) return
    const existing = route.onRequest
    route.onRequest = existing === undefined ? [hook] : Array.isArray(existing) ? [...existing, hook] : [existing, hook]
  })
  done()
}

// Like fastify-plugin: apply to the whole application, not only this plugin's encapsulated context.
Object.assign(haltPlugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'halt' })

export type { Decision } from '../../core/types.js'
export type { AdapterOptions, HttpLimiter } from '../../http/gate.js'
export type { HeaderFormat } from '../../http/headers.js'
