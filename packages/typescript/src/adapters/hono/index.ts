// halt/hono: haltMiddleware(limiter) for Hono on any runtime, over the shared HTTP layer.
import type { Decision } from '../../core/types.js'
import { type AdapterOptions, Gate, type HttpLimiter } from '../../http/gate.js'
import { rejectionBody, rejectionStatus } from '../../http/headers.js'
import { WebRequestView } from '../../http/request.js'
import { runtimeIp, wait, withLimits } from '../web.js'

/** The parts of Hono's `Context` Halt uses (structural: halt/hono needs no type from hono). */
export interface HonoContextLike {
  req: { raw: Request }
  env: unknown
  header(name: string, value: string): void
  body(data: string, status: 429 | 503, headers: Record<string, string>): Response
  get(key: 'user'): unknown
}

export interface HaltHonoOptions<Ctx extends HonoContextLike = HonoContextLike> extends AdapterOptions {
  /**
   * The client's (peer) address. Default: the socket on @hono/node-server, Bun
   * and Deno; elsewhere pass `(c) => getConnInfo(c).remote.address` or, on
   * Workers, `(c) => c.req.header('cf-connecting-ip')`.
   */
  getIp?: (c: Ctx) => string | undefined
  /** The authenticated user, for the `user` and `composite` strategies. Default `c.get('user')`. */
  getUser?: (c: Ctx) => unknown
  /** Build your own rejection; the rate-limit headers and `Retry-After` are added to it. Default: 429 with a JSON body. */
  onLimited?: (c: Ctx, decision: Decision) => Response | Promise<Response>
}

function setHonoHeader(c: HonoContextLike, name: string, value: string): void {
  c.header(name, value)
}

/**
 * Hono middleware enforcing one limiter (or several: the first rejection wins).
 *
 * @example
 * app.use('/api/*', haltMiddleware(new RateLimiter({ policy: presets.PUBLIC_API })))
 */
export function haltMiddleware<Ctx extends HonoContextLike = HonoContextLike>(
  limiter: HttpLimiter | readonly HttpLimiter[],
  options: HaltHonoOptions<Ctx> = {},
): (c: Ctx, next: () => Promise<void>) => Promise<Response | undefined> {
  const gate = new Gate(limiter, options, 'haltMiddleware')
  const { getIp, getUser, onLimited } = options
  const userOf = (_r: Request, c: unknown) => (getUser !== undefined ? getUser(c as Ctx) : (c as Ctx).get('user'))

  function finish(d: Decision, c: Ctx, next: () => Promise<void>): Promise<Response | undefined> {
    if (d.reason === 'exempt') return next() as Promise<undefined>
    gate.describe(c.req.raw, d, c, setHonoHeader)
    if (d.allowed) {
      return (d.delay > 0 ? wait(d.delay).then(next) : next()) as Promise<undefined>
    }
    if (onLimited !== undefined) return Promise.resolve(onLimited(c, d)).then((res) => withLimits(res, gate, d))
    return Promise.resolve(c.body(rejectionBody(d), rejectionStatus(d), { 'Content-Type': 'application/json; charset=utf-8' }))
  }

  return function haltMiddleware(c: Ctx, next: () => Promise<void>): Promise<Response | undefined> {
    const request = c.req.raw
    const ip = getIp !== undefined ? getIp(c) : runtimeIp(request, c.env)
    const d = gate.check(new WebRequestView(request, ip, c, userOf))
    return d instanceof Promise ? d.then((x) => finish(x, c, next)) : finish(d, c, next)
  }
}

export type { Decision } from '../../core/types.js'
export type { AdapterOptions, HttpLimiter } from '../../http/gate.js'
export type { HeaderFormat } from '../../http/headers.js'
