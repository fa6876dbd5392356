// halt/koa over a real Koa 3 server on loopback.
import type { AddressInfo } from 'node:net'
import Koa from 'koa'
import { haltMiddleware } from '../../src/adapters/koa/index.js'
import { adapterContract, CUSTOM_REJECTION } from './contract.js'

adapterContract('koa', async ({ global, strict, options, customReject }) => {
  const onLimited = customReject
    ? (ctx: Koa.Context) => {
        ctx.status = CUSTOM_REJECTION.status
        ctx.body = CUSTOM_REJECTION.body
      }
    : undefined
  const app = new Koa()
  app.silent = true // the hostile-input test sends malformed requests; Koa would print each parse error
  app.use(async (ctx, next) => {
    const user = ctx.get('x-user')
    if (user) ctx.state.user = { id: user }
    await next()
  })
  app.use(haltMiddleware(global, { ...options, onLimited }))
  const strictLimit = haltMiddleware<Koa.Context>(strict, { ...options, onLimited })
  app.use(async (ctx) => {
    if (ctx.path === '/api/strict') {
      await strictLimit(ctx, async () => {
        ctx.body = 'strict'
      })
      return
    }
    ctx.body = ctx.path === '/api/hello' ? 'hello' : 'ok'
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((ok) => server.once('listening', ok))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  }
})
