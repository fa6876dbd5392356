// Fetch-API plumbing shared by halt/fetch, halt/next and halt/hono: client address lookups, 429 Response, headers on a Response.
import type { Decision } from '../core/types.js'
import { hopAddress } from '../http/forwarded.js'
import { DECISION, type Gate } from '../http/gate.js'
import { moreRestrictive, rejectionBody, rejectionStatus } from '../http/headers.js'

/** Finds the client (peer) address of a Web request; `context` is the runtime's second handler argument. */
export type GetIp<C = unknown> = (request: Request, context: C) => string | undefined

/**
 * Reads the client address from a header that your platform sets and clients
 * cannot forge, e.g. `x-real-ip` on Vercel, `cf-connecting-ip` on Cloudflare,
 * `fly-client-ip` on Fly.io, `x-nf-client-connection-ip` on Netlify. Takes the
 * rightmost entry of a list (the one the nearest proxy wrote). Never use it
 * for a header that reaches your code unfiltered: any client could pick its
 * own address.
 *
 * @example
 * withHalt(limiter, handler, { getIp: ipFromHeader('x-real-ip') })
 */
export function ipFromHeader(name: string): (request: Request) => string | undefined {
  const header = name.toLowerCase()
  return (request) => {
    const v = request.headers.get(header)
    if (v === null) return undefined
    return hopAddress(v.slice(v.lastIndexOf(',') + 1))
  }
}

/**
 * The peer address where the runtime exposes it through the second handler
 * argument: Deno (`info.remoteAddr.hostname`), Bun (`server.requestIP(request)`),
 * @hono/node-server (`env.incoming.socket`). Undefined elsewhere.
 */
export function runtimeIp(request: Request, context: unknown): string | undefined {
  if (context === null || typeof context !== 'object') return undefined
  const c = context as {
    remoteAddr?: { hostname?: unknown }
    requestIP?: (r: Request) => { address?: unknown } | null
    incoming?: { socket?: { remoteAddress?: unknown } }
    server?: { incoming?: { socket?: { remoteAddress?: unknown } } }
  }
  let ip: unknown
  try {
    ip = c.remoteAddr?.hostname ?? c.incoming?.socket?.remoteAddress ?? c.server?.incoming?.socket?.remoteAddress
    if (ip === undefined && typeof c.requestIP === 'function') ip = c.requestIP(request)?.address
  } catch {
    return undefined
  }
  return typeof ip === 'string' ? ip : undefined
}

/** `Headers#set` as a plain function for the header writers. */
export function setWebHeader(h: Headers, name: string, value: string): void {
  h.set(name, value)
}

/** What a request's response should describe: the most restrictive decision so far, and the gate that can write it. */
interface Memo {
  decision: Decision
  gate: Gate
}
type Remembered = { [DECISION]?: Memo }

/**
 * Record `d` on the request; nested wrappers (an app-wide limiter around a
 * route's) then all describe the most restrictive decision.
 */
export function remember(request: Request, d: Decision, gate: Gate): void {
  const r = request as Request & Remembered
  const prev = r[DECISION]
  if (d.reason !== 'exempt' && (prev === undefined || moreRestrictive(d, prev.decision))) r[DECISION] = { decision: d, gate }
}

/** The default rejection: 429 (503 when the store is down and the limiter fails closed), rate-limit headers, JSON body. */
export function rejectionResponse(request: Request, d: Decision): Response {
  const headers = new Headers({ 'Content-Type': 'application/json; charset=utf-8' })
  const res = new Response(rejectionBody(d), { status: rejectionStatus(d), headers })
  return describeLimits(res, request)
}

/** `res` with the rate-limit headers of the request's most restrictive decision (see `remember`). */
export function describeLimits(res: Response, request: Request): Response {
  const memo = (request as Request & Remembered)[DECISION]
  return memo === undefined ? res : withLimits(res, memo.gate, memo.decision)
}

/** `res` with `d`'s rate-limit headers, copied first when its headers are immutable (e.g. `Response.redirect()`). */
export function withLimits(res: Response, gate: Gate, d: Decision): Response {
  try {
    gate.writeHeaders(d, res.headers, setWebHeader)
    return res
  } catch {
    const copy = new Response(res.body, res)
    gate.writeHeaders(d, copy.headers, setWebHeader)
    return copy
  }
}

/** Resolves after `seconds` (the leaky bucket's shaping delay). */
export function wait(seconds: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, seconds * 1000))
}
