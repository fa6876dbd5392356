// HTTP microbenchmark, in process: what each middleware adds to one request, on Node's real IncomingMessage and
// ServerResponse objects (no sockets, no load generator). Express: the middleware alone, called with a fresh request and
// response; Fastify: the whole app (routing, hooks, reply, writeHead), fed through its request listener. Measured as CPU
// time (process.cpuUsage), alternating contenders round by round, medians: other load on a shared machine moves it far
// less than it moves a load test. Run: npm run bench:http-micro -w halt-bench (after npm run build -w halt).
// Options: --rounds <n> (default 31), --n <requests per round> (default 20000 for Express, a quarter for Fastify).
import http from 'node:http'
import net from 'node:net'
import { median, table } from './lib.mjs'

const LIMIT = 1e9
const WINDOW_S = 60

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : dflt
}

// A connected-looking socket: the client address is all the middlewares read from it.
const socket = new net.Socket()
Object.defineProperty(socket, 'remoteAddress', { value: '127.0.0.1' })
const RAW_HEADERS = ['Host', '127.0.0.1:3000', 'User-Agent', 'wrk', 'Accept', '*/*']

function request() {
  const req = new http.IncomingMessage(socket)
  req.method = 'GET'
  req.url = '/'
  req.httpVersion = '1.1'
  req.httpVersionMajor = 1
  req.httpVersionMinor = 1
  req.rawHeaders = RAW_HEADERS
  req.complete = true
  return req
}

async function halt(headers) {
  const { RateLimiter, InMemoryStore } = await import('halt')
  // Loopback is exempt by default: turn that off so every request is counted.
  const limiter = new RateLimiter({ store: new InMemoryStore(), policy: { name: 'bench', limit: LIMIT, window: WINDOW_S }, exemptPrivateIps: false })
  return { limiter, options: headers ? {} : { headers: 'none' } }
}

async function expressContenders() {
  const { haltMiddleware } = await import('halt/express')
  const { rateLimit } = await import('express-rate-limit')
  const { RateLimiterMemory } = await import('rate-limiter-flexible')
  const withHeaders = await halt(true)
  const without = await halt(false)
  const rlf = new RateLimiterMemory({ points: LIMIT, duration: WINDOW_S })
  const next = () => {}
  return {
    'no middleware': (_req, _res, done) => done(),
    'headers-only middleware': (_req, res, done) => {
      res.setHeader('RateLimit-Limit', '100')
      res.setHeader('RateLimit-Remaining', '99')
      res.setHeader('RateLimit-Reset', '1700000000')
      done()
    },
    halt: haltMiddleware(withHeaders.limiter, withHeaders.options),
    'halt, no headers': haltMiddleware(without.limiter, without.options),
    // express-rate-limit reads req.ip (Express's getter); give the bare request the same field.
    'express-rate-limit': ((mw) => (req, res, done) => {
      req.ip = req.socket.remoteAddress
      req.app = { get: () => false }
      mw(req, res, done)
    })(rateLimit({ windowMs: WINDOW_S * 1000, limit: LIMIT, standardHeaders: 'draft-6', legacyHeaders: false, validate: false })),
    'rate-limiter-flexible': (req, res, done) => {
      rlf.consume(req.socket.remoteAddress).then((r) => {
        res.setHeader('RateLimit-Limit', LIMIT)
        res.setHeader('RateLimit-Remaining', r.remainingPoints)
        res.setHeader('RateLimit-Reset', Math.ceil((Date.now() + r.msBeforeNext) / 1000))
        done()
      }, next)
    },
  }
}

async function fastifyContenders() {
  const { default: Fastify } = await import('fastify')
  const { haltPlugin } = await import('halt/fastify')
  const { default: fastifyRateLimit } = await import('@fastify/rate-limit')
  const app = async (setup) => {
    const f = Fastify()
    await setup(f)
    f.get('/', async () => 'hello world')
    await f.ready()
    return f.server.listeners('request')[0]
  }
  const withHeaders = await halt(true)
  const without = await halt(false)
  return {
    'fastify bare': await app(async () => {}),
    'empty onRequest hook': await app(async (f) => f.addHook('onRequest', (_req, _reply, done) => done())),
    'headers-only hook': await app(async (f) =>
      f.addHook('onRequest', (_req, reply, done) => {
        reply.header('ratelimit-limit', '100')
        reply.header('ratelimit-remaining', '99')
        reply.header('ratelimit-reset', '1700000000')
        done()
      }),
    ),
    halt: await app(async (f) => f.register(haltPlugin, { limiter: withHeaders.limiter, ...withHeaders.options })),
    'halt, no headers': await app(async (f) => f.register(haltPlugin, { limiter: without.limiter, ...without.options })),
    '@fastify/rate-limit': await app(async (f) => f.register(fastifyRateLimit, { max: LIMIT, timeWindow: WINDOW_S * 1000 })),
  }
}

/** µs of CPU per call of `run` for each contender: medians of `rounds` alternating rounds of `n` calls. */
async function measure(contenders, run, n, rounds) {
  const names = Object.keys(contenders)
  const times = Object.fromEntries(names.map((k) => [k, []]))
  for (const k of names) await run(contenders[k], n) // warm-up (JIT)
  for (let r = 0; r < rounds; r++) {
    for (const k of r % 2 ? [...names].reverse() : names) {
      const c0 = process.cpuUsage()
      await run(contenders[k], n)
      const c = process.cpuUsage(c0)
      times[k].push((c.user + c.system) / n)
    }
  }
  return Object.fromEntries(names.map((k) => [k, median(times[k])]))
}

const settle = () => new Promise((ok) => setImmediate(ok))

// Requests go in batches of 50, each settled before the next, so that few are alive at a time: garbage collection
// then costs what it costs a server, instead of copying thousands of live requests.
const BATCH = 50

async function runExpress(mw, n) {
  let pending = 0
  const done = () => {
    pending--
  }
  for (let i = 0; i < n; i += BATCH) {
    for (let j = 0; j < BATCH; j++) {
      pending++
      const req = request()
      mw(req, new http.ServerResponse(req), done)
    }
    while (pending > 0) await settle() // rate-limiter-flexible and express-rate-limit answer in a promise
  }
}

async function runFastify(listener, n) {
  for (let i = 0; i < n; i += BATCH) {
    for (let j = 0; j < BATCH; j++) {
      const req = request()
      listener(req, new http.ServerResponse(req))
    }
    await settle() // the async route handler replies in a microtask
  }
}

function report(title, us, base) {
  console.log(
    `\n${title}\n\n${table(
      ['contender', 'CPU per request', `over ${base}`],
      Object.entries(us).map(([k, v]) => [k, `${v.toFixed(2)} µs`, k === base ? '' : `${(v - us[base]).toFixed(2)} µs`]),
    )}`,
  )
}

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : ''
const rounds = arg('rounds', 31)
const n = arg('n', 20000)
console.log(`node ${process.version}; CPU time per request, medians of ${rounds} alternating rounds`)
if (!only || only === 'express')
  report(
    `Express middleware alone (${n} calls per round, a fresh IncomingMessage and ServerResponse each)`,
    await measure(await expressContenders(), runExpress, n, rounds),
    'no middleware',
  )
if (!only || only === 'fastify')
  report(
    `Fastify app, the whole request (${Math.round(n / 4)} requests per round, output buffered in the ServerResponse)`,
    await measure(await fastifyContenders(), runFastify, Math.round(n / 4), rounds),
    'fastify bare',
  )
