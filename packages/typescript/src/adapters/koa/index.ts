// halt/koa: haltMiddleware(limiter) for Koa 2 and 3, app-wide or per route, over the shared HTTP layer.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Decision } from '../../core/types.js'
import { type AdapterOptions, Gate, type HttpLimiter } from '../../http/gate.js'
import { rejectionBody, rejectionStatus } from '../../http/headers.js'
import { NodeRequestView, setNodeHeader } from '../node.js'

/** The parts of Koa's context Halt uses (structural: halt/koa needs no type from koa). */
export interface KoaContextLike {
  req: IncomingMessage
  res: ServerResponse
  state: unknown
  status: number
  type: string
  body: unknown
}

export interface HaltKoaOptions<Ctx extends KoaContextLike = KoaContextLike> extends AdapterOptions {
  /** The authenticated user, for the `user` and `composite` strategies. Default `ctx.state.user` (koa-passport, koa-jwt). */
  getUser?: (ctx: Ctx) => unknown
  /** Set your own rejection on `ctx` (headers and `Retry-After` are already set). Default: 429 with a JSON body. */
  onLimited?: (ctx: Ctx, decision: Decision) => void
}

/**
 * Koa middleware enforcing one limiter (or several: the first rejection wins).
 *
 * @example
 * app.use(haltMiddleware(new RateLimiter({ policy: presets.PUBLIC_API })))
 */
export function haltMiddleware<Ctx extends KoaContextLike = KoaContextLike>(
  limiter: HttpLimiter | readonly HttpLimiter[],
  options: HaltKoaOptions<Ctx> = {},
): (ctx: Ctx, next: () => Promise<unknown>) => Promise<unknown> {
  const gate = new Gate(limiter, options, 'haltMiddleware')
  const onLimited = options.onLimited
  const userOf = options.getUser ?? ((ctx: Ctx) => (ctx.state as { user?: unknown } | undefined)?.user)

  function finish(d: Decision, ctx: Ctx, next: () => Promise<unknown>): Promise<unknown> {
    if (d.reason === 'exempt') return next()
    gate.describe(typeof ctx.state === 'object' && ctx.state !== null ? ctx.state : ctx.req, d, ctx.res, setNodeHeader)
    if (d.allowed) {
      return d.delay > 0 ? new Promise((ok) => setTimeout(ok, d.delay * 1000)).then(next) : next()
    }
    if (onLimited !== undefined) {
      onLimited(ctx, d)
      return Promise.resolve()
    }
    ctx.status = rejectionStatus(d)
    ctx.type = 'application/json; charset=utf-8'
    ctx.body = rejectionBody(d)
    return Promise.resolve()
  }

  return function haltMiddleware(ctx: Ctx, next: () => Promise<unknown>): Promise<unknown> {
    const d = gate.check(new NodeRequestView(ctx.req, ctx, userOf))
    return d instanceof Promise ? d.then((x) => finish(x, ctx, next)) : finish(d, ctx, next)
  }
}

export type { Decision } from '../../core/types.js'
export type { AdapterOptions, HttpLimiter } from '../../http/gate.js'
export type { HeaderFormat } from '../../http/headers.js'
