// halt/express: haltMiddleware(limiter) for Express 4 and 5, app-wide or per route, over the shared HTTP layer.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Decision } from '../../core/types.js'
import { type AdapterOptions, Gate, type HttpLimiter } from '../../http/gate.js'
import { rejectionBody, rejectionStatus } from '../../http/headers.js'
import { NodeRequestView, setNodeHeader } from '../node.js'

/** Express's `next`. */
export type NextFunction = (err?: unknown) => void

export interface HaltExpressOptions<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse> extends AdapterOptions {
  /** The authenticated user, for the `user` and `composite` strategies. Default `req.user` (Passport and most auth middleware). */
  getUser?: (req: Req) => unknown
  /**
   * Send your own rejection. The rate-limit headers and `Retry-After` are already
   * set; the default sends 429 (503 if the store is down and the limiter fails
   * closed) with a JSON body.
   */
  onLimited?: (req: Req, res: Res, next: NextFunction, decision: Decision) => void
}

/**
 * Express middleware enforcing one limiter (or several: the first rejection
 * wins). Exempt requests pass untouched; admitted ones get rate-limit headers
 * (an earlier, less restrictive limiter's headers are replaced); rejected ones
 * get 429, `Retry-After` and a JSON body.
 *
 * @example
 * app.use(haltMiddleware(new RateLimiter({ policy: presets.PUBLIC_API, trustedProxies: ['10.0.0.0/8'] })))
 * app.post('/login', haltMiddleware(new RateLimiter({ policy: presets.AUTH_ENDPOINTS })), login)
 */
export function haltMiddleware<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse>(
  limiter: HttpLimiter | readonly HttpLimiter[],
  options: HaltExpressOptions<Req, Res> = {},
): (req: Req, res: Res, next: NextFunction) => void {
  const gate = new Gate(limiter, options, 'haltMiddleware')
  const onLimited = options.onLimited
  const userOf = options.getUser ?? ((req: Req) => (req as { user?: unknown }).user)

  function finish(d: Decision, req: Req, res: Res, next: NextFunction): void {
    if (d.reason === 'exempt') {
      next()
      return
    }
    const locals = (res as { locals?: unknown }).locals
    gate.describe(typeof locals === 'object' && locals !== null ? locals : req, d, res, setNodeHeader)
    if (d.allowed) {
      if (d.delay > 0) setTimeout(next, d.delay * 1000)
      else next()
      return
    }
    if (onLimited !== undefined) {
      onLimited(req, res, next, d)
      return
    }
    res.statusCode = rejectionStatus(d)
    res.setHeader('Content-Type', 'application/json; charset=utf-8')
    res.end(rejectionBody(d))
  }

  return function haltMiddleware(req: Req, res: Res, next: NextFunction): void {
    let d: Decision | Promise<Decision>
    try {
      d = gate.check(new NodeRequestView(req, req, userOf))
    } catch (e) {
      next(e)
      return
    }
    if (d instanceof Promise) {
      d.then((x) => finish(x, req, res, next)).catch(next)
      return
    }
    finish(d, req, res, next)
  }
}

export type { Decision } from '../../core/types.js'
export type { AdapterOptions, HttpLimiter } from '../../http/gate.js'
export type { HeaderFormat } from '../../http/headers.js'
