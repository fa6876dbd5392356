// The RequestView of a Node.js IncomingMessage, shared by the Express, Fastify and Koa adapters (types only from node:http).
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RequestView } from '../http/request.js'
import { pathOf } from '../http/request.js'

/**
 * A `RequestView` over Node's `IncomingMessage`. The client address is the
 * socket's peer (the framework's own trust-proxy setting is not consulted:
 * Halt's `trustedProxies` decides, so the two cannot disagree silently).
 */
export class NodeRequestView<Src = unknown> implements RequestView {
  constructor(
    readonly raw: IncomingMessage,
    /** The framework's request or context object, handed to `userOf`. */
    readonly source: Src,
    private readonly userOf: (source: Src) => unknown,
  ) {}

  get ip(): string | undefined {
    return this.raw.socket?.remoteAddress
  }

  get method(): string {
    return this.raw.method ?? 'GET'
  }

  get path(): string {
    return pathOf(this.raw.url ?? '/')
  }

  header(name: string): string | undefined {
    const v = this.raw.headers[name]
    if (typeof v === 'string' || v === undefined) return v
    return Array.isArray(v) ? v.join(', ') : String(v)
  }

  get user(): unknown {
    return this.userOf(this.source)
  }
}

/** `res.setHeader` as a plain function (the header writers take one, so no closure is made per request). */
export function setNodeHeader(res: ServerResponse, name: string, value: string): void {
  res.setHeader(name, value)
}
