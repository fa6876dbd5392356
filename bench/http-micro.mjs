// HTTP microbenchmark, in process: what each middleware adds to one request, on Node's real IncomingMessage and
// ServerResponse objects (no sockets, no load generator). Express: the middleware alone, called with a fresh request and
// response; Fastify: the whole app (routing, hooks, reply, writeHead), fed through its request listener. Measured as CPU
// time (process.cpuUsage), alternating contenders round by round, medians: other load on a shared machine moves it far
// less than it moves a load test. Run: npm run bench:http-micro -w halt-bench (after npm run build -w halt).
// Options: --rounds <n> (default 31), --n <requests per round> (default 20000 for Express, a quarter for Fastify).
import { spawn } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { median, table } from './lib.mjs'

const SELF = fileURLToPath(import.meta.url)

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

async function expressApps() {
  const { default: express } = await import('express')
  const mws = await expressContenders()
  const app = (mw) => {
    const a = express()
    if (mw !== undefined) a.use(mw)
    a.get('/', (_req, res) => {
      res.send('hello world')
    })
    return a
  }
  return {
    'express bare': app(undefined),
    // What Express charges for one more layer in its router, before a middleware does anything.
    'empty middleware': app(mws['no middleware']),
    'headers-only middleware': app(mws['headers-only middleware']),
    halt: app(mws.halt),
    'halt, no headers': app(mws['halt, no headers']),
    // In an app, express-rate-limit reads Express's own req.ip.
    'express-rate-limit': app(
      (await import('express-rate-limit')).rateLimit({ windowMs: WINDOW_S * 1000, limit: LIMIT, standardHeaders: 'draft-6', legacyHeaders: false }),
    ),
    'rate-limiter-flexible': app(mws['rate-limiter-flexible']),
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

/**
 * µs of CPU per request for each contender of `section`: each contender runs in its own process (so that no
 * contender's objects make another's code polymorphic), the rounds alternate between them, medians.
 */
async function measure(section, rounds) {
  const names = Object.keys(await SECTIONS[section].build())
  const children = {}
  for (const name of names) {
    const child = spawn(process.execPath, [SELF, '--child', section, name], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    await new Promise((ok, fail) => {
      child.once('message', ok)
      child.once('exit', (code) => fail(new Error(`${name} exited with ${code}`)))
    })
    children[name] = child
  }
  const times = Object.fromEntries(names.map((k) => [k, []]))
  try {
    for (let r = 0; r < rounds; r++) {
      for (const k of r % 2 ? [...names].reverse() : names) {
        times[k].push(
          await new Promise((ok) => {
            children[k].once('message', ok)
            children[k].send('run')
          }),
        )
      }
    }
  } finally {
    for (const c of Object.values(children)) c.kill()
  }
  return Object.fromEntries(names.map((k) => [k, median(times[k])]))
}

/** In a child: build one contender, warm it up, then run `n` requests per message and answer with the CPU µs per request. */
async function serve(section, name) {
  const { build, run, n } = SECTIONS[section]
  const contender = (await build())[name]
  await run(contender, n) // warm-up (JIT)
  process.on('message', async () => {
    const c0 = process.cpuUsage()
    await run(contender, n)
    const c = process.cpuUsage(c0)
    process.send((c.user + c.system) / n)
  })
  process.on('disconnect', () => process.exit(0))
  process.send('ready')
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

async function runApp(app, n) {
  for (let i = 0; i < n; i += BATCH) {
    for (let j = 0; j < BATCH; j++) {
      const req = request()
      app(req, new http.ServerResponse(req))
    }
    await settle()
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

const n = arg('n', 20000)
const SECTIONS = {
  'express-middleware': {
    title: `Express middleware alone (${n} calls per round, a fresh IncomingMessage and ServerResponse each)`,
    build: expressContenders,
    run: runExpress,
    n,
    base: 'no middleware',
  },
  'express-app': {
    title: `Express app, the whole request (${n / 4} requests per round, output buffered in the ServerResponse)`,
    build: expressApps,
    run: runApp,
    n: n / 4,
    base: 'express bare',
  },
  'fastify-app': {
    title: `Fastify app, the whole request (${n / 4} requests per round, output buffered in the ServerResponse)`,
    build: fastifyContenders,
    run: runFastify,
    n: n / 4,
    base: 'fastify bare',
  },
}

if (process.argv[2] === '--child') {
  await serve(process.argv[3], process.argv[4])
} else {
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : ''
  const rounds = arg('rounds', 31)
  console.log(`node ${process.version}; CPU time per request, medians of ${rounds} alternating rounds, one process per contender`)
  for (const [section, { title, base }] of Object.entries(SECTIONS)) {
    if (section.includes(only)) report(title, await measure(section, rounds), base)
  }
}
