// RequestView: the framework-neutral view of an HTTP request that the limiter reads, and helpers to build one.

/**
 * What Halt reads from a request. Adapters build one per request (cheaply: every
 * field may be a getter); you can build your own to call `limiter.check(view)`
 * from any server.
 *
 * @example
 * limiter.check({ ip: socket.remoteAddress, method: 'GET', path: '/api/items', header: (n) => headers[n], user: session?.user })
 */
export interface RequestView {
  /**
   * The address of the TCP peer (the socket), not a header. `undefined` when the
   * runtime cannot tell. Forwarding headers are applied on top of it, and only
   * when this peer is a trusted proxy.
   */
  readonly ip: string | undefined
  readonly method: string
  /**
   * The request path as the router sees it, without the query string:
   * `/api/items`. Used for exemptions; a full URL or a path with a query is also
   * accepted (only the path part is read).
   */
  readonly path: string
  /** A request header by lowercase name; several values joined with `, `. */
  header(name: string): string | undefined
  /** The authenticated user (e.g. `req.user`), for the `user` and `composite` key strategies. */
  readonly user?: unknown
}

/**
 * The path of a request target: `/a/b?x=1` -> `/a/b`; `https://h/a/b?x` -> `/a/b`.
 * No decoding and no normalisation (see docs/http.md, exemptions).
 *
 * @example
 * pathOf('/health?probe=1') // '/health'
 */
export function pathOf(url: string): string {
  if (typeof url !== 'string' || url.length === 0) return '/'
  let start = 0
  if (url.charCodeAt(0) !== 47) {
    const scheme = url.indexOf('://')
    if (scheme < 0) return url
    start = url.indexOf('/', scheme + 3)
    if (start < 0) return '/'
  }
  let end = url.length
  const q = url.indexOf('?', start)
  if (q >= 0) end = q
  const h = url.indexOf('#', start)
  if (h >= 0 && h < end) end = h
  return start === 0 && end === url.length ? url : url.slice(start, end)
}

/**
 * A `RequestView` over a Web `Request` (Fetch API: Next.js, Hono, Deno, Bun, Workers).
 *
 * @example
 * limiter.check(new WebRequestView(request, request.headers.get('cf-connecting-ip') ?? undefined))
 */
export class WebRequestView implements RequestView {
  constructor(
    readonly request: Request,
    readonly ip: string | undefined,
    /** The runtime's second handler argument (Next's context, Deno's info, a Worker's env), passed to `getUser`. */
    readonly context?: unknown,
    private readonly getUser?: (request: Request, context: unknown) => unknown,
  ) {}

  get method(): string {
    return this.request.method
  }

  get path(): string {
    return pathOf(this.request.url)
  }

  header(name: string): string | undefined {
    return this.request.headers.get(name) ?? undefined
  }

  get user(): unknown {
    return this.getUser?.(this.request, this.context)
  }
}
