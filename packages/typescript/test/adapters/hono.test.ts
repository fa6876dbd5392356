// halt/hono over a real Hono app served by @hono/node-server on loopback (client address from the socket, by default).
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { haltMiddleware } from '../../src/adapters/hono/index.js'
import { adapterContract, CUSTOM_REJECTION } from './contract.js'

adapterContract('hono', async ({ global, strict, options, customReject }) => {
  const onLimited = customReject ? () => new Response(CUSTOM_REJECTION.body, { status: CUSTOM_REJECTION.status }) : undefined
  const app = new Hono<{ Variables: { user: { id: string } } }>()
  app.use(async (c, next) => {
    const user = c.req.header('x-user')
    if (user) c.set('user', { id: user })
    await next()
  })
  app.use(haltMiddleware(global, { ...options, onLimited }))
  app.get('/api/hello', (c) => c.text('hello'))
  app.get('/api/strict', haltMiddleware(strict, { ...options, onLimited }), (c) => c.text('strict'))
  app.get('/health', (c) => c.text('ok'))
  app.get('/health;x', (c) => c.text('ok'))
  const server = await new Promise<ReturnType<typeof serve>>((ok) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => ok(s))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  }
})
