// halt/express over a real Express 5 server on loopback.
import type { AddressInfo } from 'node:net'
import express from 'express'
import { haltMiddleware } from '../../src/adapters/express/index.js'
import { adapterContract, CUSTOM_REJECTION } from './contract.js'

adapterContract('express', async ({ global, strict, options, customReject }) => {
  const onLimited = customReject
    ? (_req: express.Request, res: express.Response) => {
        res.status(CUSTOM_REJECTION.status).send(CUSTOM_REJECTION.body)
      }
    : undefined
  const app = express()
  app.use((req, _res, next) => {
    const user = req.headers['x-user']
    if (typeof user === 'string') (req as express.Request & { user?: unknown }).user = { id: user }
    next()
  })
  app.use(haltMiddleware(global, { ...options, onLimited }))
  app.get('/api/hello', (_req, res) => {
    res.send('hello')
  })
  app.get('/api/strict', haltMiddleware<express.Request, express.Response>(strict, { ...options, onLimited }), (_req, res) => {
    res.send('strict')
  })
  app.get(['/health', '/health;x'], (_req, res) => {
    res.send('ok')
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((ok) => server.once('listening', ok))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  }
})
