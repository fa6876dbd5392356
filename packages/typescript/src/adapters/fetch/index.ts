// halt/fetch: rate limiting for any Fetch-API runtime (Deno, Bun, Workers, Node's Request): a gate and a handler wrapper.
import type { Decision } from '../../core/types.js'
import { type AdapterOptions, Gate, type HttpLimiter } from '../../http/gate.js'
import { WebRequestView } from '../../http/request.js'
import { describeLimits, type GetIp, ipFromHeader, rejectionResponse, remember, runtimeIp, wait } from '../web.js'

export interface HaltFetchOptions<C = unknown> extends AdapterOptions {
  /**
   * The client's (peer) address. Default: what the runtime exposes in the second
   * handler argument (Deno's `info`, Bun's `server`); elsewhere pass one, e.g.
   * `ipFromHeader('cf-connecting-ip')` on Cloudflare Workers.
   */
  getIp?: GetIp<C>
  /** The authenticated user, for the `user` and `composite` strategies. */
  getUser?: (request: Request, context: C) => unknown
  /** Build your own rejection. Default: 429 with rate-limit headers, `Retry-After` and a JSON body. */
  onLimited?: (request: Request, decision: Decision) => Response | Promise<Response>
}

/** A Fetch handler: `(request, context) => Response`. */
export type FetchHandler<C = unknown> = (request: Request, context: C) => Response | Promise<Response>

function view<C>(request: Request, context: C, options: HaltFetchOptions<C>): WebRequestView {
  const ip = options.getIp !== undefined ? options.getIp(request, context) : runtimeIp(request, context)
  return new WebRequestView(request, ip, context, options.getUser as ((r: Request, c: unknown) => unknown) | undefined)
}

/**
 * A gate for any Fetch-API runtime: `undefined` when the request may proceed,
 * else the 429 `Response`. Synchronous over the in-memory store. It cannot add
 * headers to a response it never sees: use `withHalt` for that.
 *
 * @example
 * const limit = haltMiddleware(limiter)
 * Deno.serve((req, info) => limit(req, info) ?? handle(req))
 */
export function haltMiddleware<C = unknown>(
  limiter: HttpLimiter | readonly HttpLimiter[],
  options: HaltFetchOptions<C> = {},
): (request: Request, context?: C) => Response | undefined | Promise<Response | undefined> {
  const gate = new Gate(limiter, options, 'haltMiddleware')
  const finish = (d: Decision, request: Request): Response | undefined | Promise<Response> => {
    remember(request, d, gate)
    if (d.allowed) return undefined
    if (options.onLimited === undefined) return rejectionResponse(request, d)
    const res = options.onLimited(request, d)
    return res instanceof Promise ? res.then((r) => describeLimits(r, request)) : describeLimits(res, request)
  }
  return (request, context) => {
    const d = gate.check(view(request, context as C, options))
    return d instanceof Promise ? d.then((x) => finish(x, request)) : finish(d, request)
  }
}

/**
 * Wrap a Fetch handler: rejected requests get the 429, admitted ones reach the
 * handler and its response gets the rate-limit headers.
 *
 * @example
 * export default { fetch: withHalt(limiter, (req) => new Response('hello'), { getIp: ipFromHeader('cf-connecting-ip') }) }
 */
export function withHalt<C = unknown>(
  limiter: HttpLimiter | readonly HttpLimiter[],
  handler: FetchHandler<C>,
  options: HaltFetchOptions<C> = {},
): FetchHandler<C> {
  const gate = new Gate(limiter, options, 'withHalt')
  return async (request, context) => {
    const d = await gate.check(view(request, context, options))
    remember(request, d, gate)
    if (!d.allowed) return options.onLimited !== undefined ? describeLimits(await options.onLimited(request, d), request) : rejectionResponse(request, d)
    if (d.delay > 0) await wait(d.delay)
    return describeLimits(await handler(request, context), request)
  }
}

export { ipFromHeader, runtimeIp }
export type { Decision } from '../../core/types.js'
export type { AdapterOptions, HttpLimiter } from '../../http/gate.js'
export type { HeaderFormat } from '../../http/headers.js'
export type { GetIp }
