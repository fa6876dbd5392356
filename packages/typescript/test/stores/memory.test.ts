// The store-conformance suite on InMemoryStore (concurrency within one process: the store is synchronous).
import { InMemoryStore } from '../../src/index.js'
import { storeConformance } from './conformance.js'

storeConformance({
  name: 'InMemoryStore',
  create: () => new InMemoryStore({ sweepInterval: 0 }),
  dispose: (store) => store.close(),
  // The suite gives every key a namespace of its own, so a namespace holding a key means that key is held.
  inspect: (store, ns) => (store.size(ns) > 0 ? {} : undefined),
  expire: (store, at) => {
    store.cleanupExpired(at)
  },
})
