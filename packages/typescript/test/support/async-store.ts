// An asynchronous store over the in-memory one: what Redis or a database looks like to the limiter.
import { InMemoryStore, type Store } from '../../src/index.js'

export function asyncStore(inner = new InMemoryStore({ sweepInterval: 0 })): Store {
  return {
    synchronous: false,
    consume: async (...a) => ({ ...inner.consume(...a) }),
    consumeSet: async (...a) => inner.consumeSet(...a),
    peek: async (...a) => ({ ...inner.peek(...a) }),
    reset: async (...a) => inner.reset(...a),
    clear: async (...a) => inner.clear(...a),
    size: async (...a) => inner.size(...a),
  }
}
