// halt/fastify: haltPlugin (app-wide limiter plus per-route `config.halt`) and haltHook for one route, over the shared HTTP layer.
import type { IncomingMessage } from 'node:http'
import type { Decision } from '../../core/types.js'
import { type AdapterOptions, Gate, type HttpLimiter } from '../../http/gate.js'
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
  /** Applied to every route of the application. Omit to limit only routes with `config.halt`. */
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
  addHook(name: 'onRequest', hook: HaltHook): unknown
  printRoutes?(): string
}

/** The parts of Fastify's request the plugin reads to find a route's `config.halt`. */
interface RoutedRequest extends FastifyRequestLike {
  is404?: boolean
  routeOptions?: { config?: unknown }
}

// reply.header() lowercases every name it is given (and Fastify sends them lowercase): handing it names already in
// lowercase spares a new string per header and request. The names are the few the header writers use.
const lowercase = new Map<string, string>()

function setReplyHeader(reply: FastifyReplyLike, name: string, value: string): void {
  let lower = lowercase.get(name)
  if (lower === undefined) {
    lower = name.toLowerCase()
    lowercase.set(name, lower)
  }
  reply.header(lower, value)
}

const userOfRequest = (r: FastifyRequestLike) => r.user

/**
 * An `onRequest` hook enforcing `limiter` (or several) on the routes it is given to.
 *
 * @example
 * fastify.post('/login', { onRequest: haltHook(new RateLimiter({ policy: presets.AUTH_ENDPOINTS })) }, login)
 */
export function haltHook(limiter: HttpLimiter | readonly HttpLimiter[], options: Omit<HaltFastifyOptions, 'limiter'> = {}): HaltHook {
  return hookOf(limiter, options, 'haltHook')
}

function hookOf(limiter: HttpLimiter | readonly HttpLimiter[], options: Omit<HaltFastifyOptions, 'limiter'>, adapter: string): HaltHook {
  const gate = new Gate(limiter, options, adapter)
  const onLimited = options.onLimited
  const userOf = options.getUser ?? userOfRequest

  function finish(d: Decision, request: FastifyRequestLike, reply: FastifyReplyLike, done: Done): void {
    if (d.reason === 'exempt') {
      done()
      return
    }
    gate.describe(request.raw, d, reply, setReplyHeader)
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

/** Marks, in a route's config, a route the plugin's onRoute hook has seen (its limiters run in its own onRequest hook). */
const SEEN = Symbol('halt.seen')

type RouteConfig = { halt?: HaltRouteConfig; [SEEN]?: true }

/**
 * Fastify plugin: the app-wide `limiter` on every route of the application,
 * plus each route's `config.halt` (both apply; the headers describe the most
 * restrictive). Not encapsulated, like a `fastify-plugin`.
 *
 * Routes registered after the plugin (also in child plugins) get the hook as
 * their last `onRequest` hook, so it runs after your authentication hooks, and
 * a bad `config.halt` throws when the route is registered. Routes registered
 * before the plugin, and 404s, are limited by a root `onRequest` hook instead
 * (it runs where the plugin was registered; their `config.halt` is read at
 * their first request).
 *
 * @example
 * await fastify.register(haltPlugin, { limiter: new RateLimiter({ policy: presets.PUBLIC_API }) })
 * fastify.post('/login', { config: { halt: authLimiter } }, login)
 * fastify.get('/metrics', { config: { halt: false } }, metrics)
 */
export function haltPlugin(fastify: FastifyLike, options: HaltFastifyOptions, done: Done): void {
  const global = options.limiter === undefined ? [] : list(options.limiter)
  const hookOptions = { headers: options.headers, quota: options.quota, getUser: options.getUser, onLimited: options.onLimited }
  const shared = global.length > 0 ? hookOf(global, hookOptions, 'haltPlugin') : null // validates now, not at the first request
  const hookFor = (cfg: HaltRouteConfig | undefined): HaltHook | null =>
    cfg === undefined ? shared : cfg === false ? null : hookOf([...global, ...list(cfg)], hookOptions, 'haltPlugin')
  fastify.addHook('onRoute', (route) => {
    const config = (route.config ?? {}) as RouteConfig
    const hook = hookFor(config.halt)
    // Fastify copies the config, symbols included, into the route's context, where the root hook below finds the mark.
    route.config = { ...config, [SEEN]: true }
    if (hook === null) return
    const existing = route.onRequest
    route.onRequest = existing === undefined ? [hook] : Array.isArray(existing) ? [...existing, hook] : [existing, hook]
  })
  // For the routes the onRoute hook did not see (registered before the plugin) and 404s: one hook per route, made at
  // its first request. When no route came before the plugin, every route but the 404 handler was seen, and the cheap
  // is404 flag is all this hook needs to read.
  const early = !emptyRouter(fastify)
  const late = new WeakMap<object, HaltHook | null>()
  fastify.addHook('onRequest', function haltPluginHook(request, reply, next) {
    if (!early && (request as RoutedRequest).is404 !== true) {
      next()
      return
    }
    const config = (request as RoutedRequest).routeOptions?.config as RouteConfig | undefined
    if (config?.[SEEN] === true) {
      next()
      return
    }
    let hook = config === undefined ? shared : late.get(config)
    if (hook === undefined) {
      try {
        hook = hookFor((config as RouteConfig).halt)
      } catch (e) {
        next(e as Error)
        return
      }
      late.set(config as RouteConfig, hook)
    }
    if (hook === null) next()
    else hook(request, reply, next)
  })
  done()
}

/**
 * Whether no route is registered yet. Fastify lists routes only as printRoutes() text, '(empty tree)' when there are
 * none; any other answer counts as "there may be some", which costs the root hook a little time, never a route.
 */
function emptyRouter(fastify: FastifyLike): boolean {
  if (typeof fastify.printRoutes !== 'function') return false
  const tree = fastify.printRoutes()
  return tree === '(empty tree)' || tree === ''
}

// Like fastify-plugin: apply to the whole application, not only this plugin's encapsulated context.
Object.assign(haltPlugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'halt' })

export type { Decision } from '../../core/types.js'
export type { AdapterOptions, HttpLimiter } from '../../http/gate.js'
export type { HeaderFormat } from '../../http/headers.js'
