// halt/next: withHalt for App Router route handlers and haltMiddleware for middleware.ts / proxy.ts; Web Request/Response only (Edge-safe).
import type { Decision } from '../../core/types.js'
import { type AdapterOptions, Gate, type HttpLimiter } from '../../http/gate.js'
import { WebRequestView } from '../../http/request.js'
import { describeLimits, type GetIp, ipFromHeader, rejectionResponse, remember, wait } from '../web.js'

export interface HaltNextOptions<C = unknown> extends AdapterOptions {
  /**
   * The client's address. Next.js does not expose the socket, so pass where your
   * platform puts it: `ipFromHeader('x-real-ip')` on Vercel, or the header your
   * own proxy sets. Without it every request is keyed `ip:unknown` (one shared
   * limit) and a warning says so.
   */
  getIp?: GetIp<C>
  /** The authenticated user (e.g. from your session), for the `user` and `composite` strategies. */
  getUser?: (request: Request, context: C) => unknown
  /** Build your own rejection. Default: 429 with rate-limit headers, `Retry-After` and a JSON body. */
  onLimited?: (request: Request, decision: Decision) => Response | Promise<Response>
}

export interface HaltNextMiddlewareOptions extends HaltNextOptions<unknown> {
  /**
   * The response of an admitted request, to which the rate-limit headers are
   * added: pass `() => NextResponse.next()` (or your own middleware). Without it
   * an admitted request gets `undefined` (Next continues as usual, without the
   * headers).
   */
  next?: (request: Request) => Response | Promise<Response>
}

function view<C>(request: Request, context: C, options: HaltNextOptions<C>): WebRequestView {
  return new WebRequestView(request, options.getIp?.(request, context), context, options.getUser as ((r: Request, c: unknown) => unknown) | undefined)
}

async function reject(request: Request, d: Decision, onLimited: HaltNextOptions['onLimited']): Promise<Response> {
  return onLimited !== undefined ? describeLimits(await onLimited(request, d), request) : rejectionResponse(request, d)
}

/**
 * Wrap an App Router route handler.
 *
 * @example
 * // app/api/items/route.ts
 * export const GET = withHalt(limiter, async (request) => Response.json(await items()), { getIp: ipFromHeader('x-real-ip') })
 */
export function withHalt<C = unknown>(
  limiter: HttpLimiter | readonly HttpLimiter[],
  handler: (request: Request, context: C) => Response | Promise<Response>,
  options: HaltNextOptions<C> = {},
): (request: Request, context: C) => Promise<Response> {
  const gate = new Gate(limiter, options, 'withHalt')
  return async (request, context) => {
    const d = await gate.check(view(request, context, options))
    remember(request, d, gate)
    if (!d.allowed) return reject(request, d, options.onLimited)
    if (d.delay > 0) await wait(d.delay)
    return describeLimits(await handler(request, context), request)
  }
}

/**
 * For `middleware.ts` (Edge runtime) or `proxy.ts`: the 429 `Response` for a
 * rejected request; for an admitted one, `options.next(request)` with the
 * rate-limit headers added, or `undefined` (continue) without `next`.
 *
 * @example
 * // middleware.ts
 * import { NextResponse } from 'next/server'
 * import { haltMiddleware, ipFromHeader } from 'halt/next'
 * export const middleware = haltMiddleware(limiter, { getIp: ipFromHeader('x-real-ip'), next: () => NextResponse.next() })
 * export const config = { matcher: '/api/:path*' }
 */
export function haltMiddleware(
  limiter: HttpLimiter | readonly HttpLimiter[],
  options: HaltNextMiddlewareOptions = {},
): (request: Request, event?: unknown) => Promise<Response | undefined> {
  const gate = new Gate(limiter, options, 'haltMiddleware')
  return async (request, event) => {
    const d = await gate.check(view(request, event, options))
    remember(request, d, gate)
    if (!d.allowed) return reject(request, d, options.onLimited)
    if (d.delay > 0) await wait(d.delay)
    if (options.next === undefined) return undefined
    return describeLimits(await options.next(request), request)
  }
}

export { ipFromHeader }
export type { Decision } from '../../core/types.js'
export type { AdapterOptions, HttpLimiter } from '../../http/gate.js'
export type { HeaderFormat } from '../../http/headers.js'
export type { GetIp }
