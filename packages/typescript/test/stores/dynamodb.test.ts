// DynamoDBStore: the conformance suite on moto's DynamoDB server (DynamoDB Local's licence is excluded here); then what
// is DynamoDB's own: the item layout, the table helper, conditional writes that hand back the item.
import { randomUUID } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DescribeTimeToLiveCommand, type DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compilePolicy } from '../../src/index.js'
import { createDynamoTable, type DynamoDBStore } from '../../src/stores/dynamodb/index.js'
import { dynamoClient, openDynamo } from './cas-clients.js'
import { pause, serverUrl, servicePid } from './cas-support.js'
import { storeConformance } from './conformance.js'

const CLIENTS = join(dirname(fileURLToPath(import.meta.url)), 'cas-clients.ts')
const URL = serverUrl('HALT_TEST_DYNAMODB_URL')
const T0 = 1_700_000_000_000

describe.skipIf(URL === undefined)('DynamoDB (moto server)', () => {
  const table = `halt_${randomUUID().slice(0, 8)}`
  const prefix = 'halt:'
  let client: DynamoDBClient
  let close: () => Promise<void>
  storeConformance<DynamoDBStore>({
    name: 'DynamoDBStore on moto',
    async create() {
      const opened = await openDynamo(URL as string, table, prefix)
      client = opened.client
      close = opened.close
      await createDynamoTable(dynamoClient(URL as string), { table })
      return opened.store
    },
    dispose: () => close(),
    async inspect(store, ns, id) {
      const r = await client.send(new GetItemCommand({ TableName: table, Key: { pk: { S: store.key(ns, id) } }, ConsistentRead: true }))
      return r.Item === undefined ? undefined : { state: JSON.parse(r.Item.s?.S as string) }
    },
    // Neither DynamoDB's TTL (late: up to days) nor moto's (never) can be awaited: expiry shows in the decisions.
    expire: () => {},
    dropsExpired: false,
    stall: (_store, ms) => pause(servicePid('dynamodb'), ms),
    setAtomic: false,
    processes: { module: CLIENTS, args: () => ['dynamodb', URL as string, table, prefix] },
  })
})

describe.skipIf(URL === undefined)('DynamoDB (moto server): what the server guarantees', () => {
  const table = `halt_${randomUUID().slice(0, 8)}`
  let client: DynamoDBClient
  beforeAll(async () => {
    client = dynamoClient(URL as string)
    await createDynamoTable(client, { table })
  })
  afterAll(() => client.destroy())

  it('conditional writes are isolated: of 20 concurrent PutItem on one version, exactly one succeeds (50 rounds)', async () => {
    const wins: number[] = []
    for (let round = 0; round < 50; round++) {
      const pk = { S: `race-${round}` }
      await client.send(new PutItemCommand({ TableName: table, Item: { pk, v: { N: '0' } } }))
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          client.send(
            new PutItemCommand({
              TableName: table,
              Item: { pk, v: { N: String(i + 1) } },
              ConditionExpression: 'v = :v',
              ExpressionAttributeValues: { ':v': { N: '0' } },
            }),
          ),
        ),
      )
      const failures = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason?.name)
      expect(new Set(failures), `round ${round}`).toEqual(new Set(['ConditionalCheckFailedException']))
      wins.push(results.filter((r) => r.status === 'fulfilled').length)
    }
    console.log(`moto: successful conditional writes per round of 20: ${[...new Set(wins)].join(', ')}`)
    expect(wins.every((w) => w === 1)).toBe(true)
  })

  it('a failed condition hands back the item (ReturnValuesOnConditionCheckFailure), so a conflict costs no extra read', async () => {
    const pk = { S: 'handback' }
    await client.send(new PutItemCommand({ TableName: table, Item: { pk, v: { N: '7' }, s: { S: '[0,1,2]' } } }))
    const error = await client
      .send(
        new PutItemCommand({
          TableName: table,
          Item: { pk, v: { N: '8' } },
          ConditionExpression: 'v = :v',
          ExpressionAttributeValues: { ':v': { N: '6' } },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      )
      .catch((e) => e)
    expect(error.name).toBe('ConditionalCheckFailedException')
    expect(error.Item).toMatchObject({ v: { N: '7' }, s: { S: '[0,1,2]' } })
  })
})

describe.skipIf(URL === undefined)('DynamoDBStore', () => {
  const table = `halt_${randomUUID().slice(0, 8)}`
  let opened: Awaited<ReturnType<typeof openDynamo>>
  beforeAll(async () => {
    opened = await openDynamo(URL as string, table, 'halt:')
    expect(await createDynamoTable(opened.client, { table })).toBe(true)
    expect(await createDynamoTable(opened.client, { table })).toBe(false) // idempotent
  })
  afterAll(() => opened.close())

  it('stores an item: pk, the state as JSON, a random version, the expiry (ms) and the TTL attribute (epoch s)', async () => {
    const rule = compilePolicy({ name: 'layout', limit: 10, window: 60 })
    const now = Date.now()
    await opened.store.consume(rule.ns, 'user:42', rule, now, 3)
    const r = await opened.client.send(new GetItemCommand({ TableName: table, Key: { pk: { S: 'halt:layout:tb:{user:42}' } }, ConsistentRead: true }))
    const item = r.Item as Record<string, { S?: string; N?: string }>
    expect(JSON.parse(item.s?.S as string)).toEqual([0, 7, now])
    expect(Number(item.e?.N)).toBe(now + 18_000)
    expect(Number(item.ttl?.N)).toBeGreaterThanOrEqual(Math.floor((now + 18_000) / 1000))
    expect(Number(item.ttl?.N)).toBeLessThanOrEqual(Math.ceil((Date.now() + 18_000) / 1000))
    expect(Number(item.v?.N)).toBeGreaterThan(0)
    const ttl = await opened.client.send(new DescribeTimeToLiveCommand({ TableName: table }))
    expect(ttl.TimeToLiveDescription).toMatchObject({ AttributeName: 'ttl', TimeToLiveStatus: 'ENABLED' })
  })

  it('one request per check for a new key or one this process wrote last; a conflict costs one more, with no read', async () => {
    const rule = compilePolicy({ name: 'rt', limit: 100, window: 60 })
    const other = await openDynamo(URL as string, table, 'halt:')
    const c = opened.store.counters
    const before = { ...c }
    for (let i = 0; i < 10; i++) await opened.store.consume(rule.ns, 'k', rule, T0 + i, 1)
    expect(c.writes - before.writes).toBe(10)
    expect(c.reads - before.reads).toBe(0)
    await other.store.consume(rule.ns, 'k', rule, T0 + 20, 1) // another process writes the key
    const o = await opened.store.consume(rule.ns, 'k', rule, T0 + 21, 1)
    expect(o.remaining).toBe(88)
    expect(c.writes - before.writes).toBe(12)
    expect(c.conflicts - before.conflicts).toBe(1)
    expect(c.reads - before.reads).toBe(0)
    await other.close()
  })

  it('an expired item that DynamoDB has not deleted yet is overwritten by the insert condition', async () => {
    const rule = compilePolicy({ name: 'exp', limit: 2, window: 1 })
    const fresh = await openDynamo(URL as string, table, 'halt:') // no guess of the key: it inserts
    await opened.store.consume(rule.ns, 'k', rule, T0, 2)
    const o = await fresh.store.consume(rule.ns, 'k', rule, T0 + 5_000, 1)
    expect(o).toMatchObject({ allowed: true, remaining: 1 })
    expect(fresh.store.counters).toMatchObject({ writes: 1, conflicts: 0, reads: 0 })
    await fresh.close()
  })
})
