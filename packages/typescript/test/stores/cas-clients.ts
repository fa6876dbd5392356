// Stores of the compare-and-set family on new connections, for the tests and for the worker processes of the
// conformance suite's concurrency test (test/stores/worker.ts calls `createStore(kind, ...args)`).
import { DynamoDBClient } from '@aws-sdk/client-dynamodb'
import { MemcacheClient } from 'memcache-client'
import { MongoClient } from 'mongodb'
import pg from 'pg'
import type { Store } from '../../src/index.js'
import { DynamoDBStore } from '../../src/stores/dynamodb/index.js'
import { MemcachedStore } from '../../src/stores/memcached/index.js'
import { MongoDBStore } from '../../src/stores/mongodb/index.js'
import { PostgresStore } from '../../src/stores/postgres/index.js'

export interface Opened<S extends Store = Store, C = unknown> {
  store: S
  client: C
  close(): Promise<void>
}

export async function openPostgres(url: string, table: string, prefix: string, max = 10): Promise<Opened<PostgresStore, pg.Pool>> {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 2000 })
  pool.on('error', () => {}) // an idle client's error (a stopped server): the next query reports it
  return { store: new PostgresStore({ pool, table, prefix, cleanupInterval: 0 }), client: pool, close: () => pool.end() }
}

/** Fail fast while the server is unreachable (the limiter's failure policy answers meanwhile). */
export async function openMongo(url: string, collection: string, prefix: string): Promise<Opened<MongoDBStore, MongoClient>> {
  const client = await new MongoClient(url, { serverSelectionTimeoutMS: 2000, heartbeatFrequencyMS: 1000, maxPoolSize: 20 }).connect()
  return {
    store: new MongoDBStore({ collection: client.db('halt_test').collection(collection), prefix }),
    client,
    close: () => client.close(),
  }
}

export function dynamoClient(url: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'halt', secretAccessKey: 'halt' }, maxAttempts: 1 })
}

export async function openDynamo(url: string, table: string, prefix: string): Promise<Opened<DynamoDBStore, DynamoDBClient>> {
  const client = dynamoClient(url)
  return { store: new DynamoDBStore({ client, table, prefix }), client, close: async () => client.destroy() }
}

export async function openMemcached(url: string, prefix: string): Promise<Opened<MemcachedStore, MemcacheClient>> {
  const client = new MemcacheClient({ server: url, cmdTimeout: 2000 })
  return { store: new MemcachedStore({ client, prefix }), client, close: async () => client.shutdown() }
}

/** For test/stores/worker.ts. */
export function createStore(kind: string, ...args: string[]): Promise<Opened> {
  const [a, b, c] = args as [string, string, string]
  switch (kind) {
    case 'postgres':
      return openPostgres(a, b, c)
    case 'mongodb':
      return openMongo(a, b, c)
    case 'dynamodb':
      return openDynamo(a, b, c)
    case 'memcached':
      return openMemcached(a, b)
    default:
      throw new Error(`unknown store kind ${kind}`)
  }
}
