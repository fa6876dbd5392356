// DynamoDBStore: one item per key, updated by the compare-and-set loop of ../cas.ts with conditional PutItem.
import { HaltConfigError } from '../../core/errors.js'
import { boundedKey, CasStore, type CasStoreOptions, checkPrefix, type Next, newVersion, type Versioned, type Written } from '../cas.js'
import { escapeKeyPart } from '../redis/keys.js'

/** The parts of `@aws-sdk/client-dynamodb`'s `DynamoDBClient` the store uses. */
export interface DynamoClientLike {
  send(command: unknown): Promise<unknown>
}

type AttributeValue = { S?: string; N?: string }
type Item = Record<string, AttributeValue>

export interface DynamoDBStoreOptions extends CasStoreOptions {
  /** A `DynamoDBClient` (AWS SDK v3). The store does not own it: destroy it yourself. */
  client: DynamoClientLike
  /** The table: partition key `pk` (string), TTL on `ttl` (see `createDynamoTable`). Default `'halt_state'`. */
  table?: string
  /** Prepended to every key (spec/KEYS.md). No `{` or `}`. Default `'halt:'`. */
  prefix?: string
}

/** The SDK's command classes, loaded when first needed: importing halt/dynamodb never requires the SDK. */
type Sdk = typeof import('@aws-sdk/client-dynamodb')
let sdk: Promise<Sdk> | undefined
function loadSdk(): Promise<Sdk> {
  sdk ??= import('@aws-sdk/client-dynamodb').catch((error) => {
    sdk = undefined
    throw error
  })
  return sdk
}

/**
 * A store in DynamoDB: one item per key. Every check runs the algorithm in this process (the spec's pure function)
 * and writes the item with `PutItem` on the condition that its version is still the one seen (or that there is none,
 * or that it has expired); a failed condition hands back the item as it stands (`ReturnValuesOnConditionCheckFailure`),
 * so a new key, or a key this process wrote last, costs one request, and a conflict costs no extra read.
 *
 * DynamoDB deletes expired items (TTL attribute `ttl`) late, up to days: that frees space only. An expired item that is
 * still there decides exactly as a missing one, and the insert condition overwrites it.
 *
 * @example
 * import { DynamoDBClient } from '@aws-sdk/client-dynamodb'
 * import { RateLimiter } from 'halt'
 * import { DynamoDBStore, createDynamoTable } from 'halt/dynamodb'
 *
 * const client = new DynamoDBClient({})
 * await createDynamoTable(client, { table: 'halt_state' }) // once, or in your infrastructure code
 * const limiter = new RateLimiter({ store: new DynamoDBStore({ client }), policy: { name: 'api', limit: 100, window: '1m' } })
 */
export class DynamoDBStore extends CasStore<string> {
  readonly table: string
  readonly prefix: string
  protected override readonly speculation = 'always'
  private readonly client: DynamoClientLike

  constructor(options: DynamoDBStoreOptions) {
    super(options ?? ({} as DynamoDBStoreOptions), 'DynamoDBStore')
    const client = options?.client
    if (client === null || typeof client !== 'object' || typeof client.send !== 'function') {
      throw new HaltConfigError(
        'HALT_INVALID_DYNAMODB_CLIENT',
        "DynamoDBStore needs a DynamoDBClient from '@aws-sdk/client-dynamodb'. Fix: new DynamoDBStore({ client: new DynamoDBClient({}) }).",
      )
    }
    this.client = client
    this.table = validTable(options.table ?? 'halt_state', 'DynamoDBStore')
    this.prefix = checkPrefix(options.prefix ?? 'halt:', 'DynamoDBStore')
  }

  /** The item's partition key `pk` for `id` under `ns` (spec/KEYS.md; hashed beyond 1024 bytes). */
  key(ns: string, id: string): string {
    return boundedKey(this.prefix, ns, id)
  }

  /** Items held (of a namespace, or under the prefix): a full Scan, for tests and small tables only. */
  async size(ns?: string): Promise<number> {
    let n = 0
    await this.scan(ns, (items) => {
      n += items.length
    })
    return n
  }

  protected async read(key: string): Promise<Versioned<string> | null> {
    const { GetItemCommand } = await loadSdk()
    // Strongly consistent: a decision may rest on this read alone (a rejection writes nothing).
    const r = (await this.client.send(new GetItemCommand({ TableName: this.table, Key: { pk: { S: key } }, ConsistentRead: true }))) as { Item?: Item }
    return r.Item === undefined ? null : record(r.Item)
  }

  protected async write(key: string, _ns: string, next: Next, prev: Versioned<string> | null): Promise<Written<string>> {
    const { PutItemCommand } = await loadSdk()
    const version = String(newVersion())
    const item: Item = {
      pk: { S: key },
      s: { S: JSON.stringify(next.state) },
      v: { N: version },
      e: { N: String(next.expiresAt) },
      ttl: { N: String(Math.ceil((Date.now() + next.ttlMs) / 1000)) },
    }
    const condition =
      prev === null
        ? { ConditionExpression: 'attribute_not_exists(pk) OR e <= :now', ExpressionAttributeValues: { ':now': { N: String(next.now) } } }
        : { ConditionExpression: 'v = :v', ExpressionAttributeValues: { ':v': { N: prev.version } } }
    try {
      await this.client.send(
        new PutItemCommand({ TableName: this.table, Item: item as never, ...(condition as object), ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }),
      )
      return { ok: true, version }
    } catch (error) {
      if ((error as { name?: string })?.name !== 'ConditionalCheckFailedException') throw error
      const current = (error as { Item?: Item }).Item
      return { ok: false, current: current === undefined ? null : record(current) }
    }
  }

  protected async remove(key: string): Promise<void> {
    const { DeleteItemCommand } = await loadSdk()
    await this.client.send(new DeleteItemCommand({ TableName: this.table, Key: { pk: { S: key } } }))
  }

  /** A Scan of the table for the prefix, deleting what it finds in batches of 25: an administrative operation, not a hot path. */
  protected async removeAll(ns?: string): Promise<void> {
    const { BatchWriteItemCommand } = await loadSdk()
    await this.scan(ns, async (items) => {
      for (let i = 0; i < items.length; i += 25) {
        let requests: Record<string, unknown[]> = {
          [this.table]: items.slice(i, i + 25).map((it) => ({ DeleteRequest: { Key: { pk: it.pk } } })),
        }
        for (let round = 0; Object.keys(requests).length > 0; round++) {
          if (round > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** round)))
          const r = (await this.client.send(new BatchWriteItemCommand({ RequestItems: requests as never }))) as { UnprocessedItems?: Record<string, unknown[]> }
          requests = r.UnprocessedItems ?? {}
        }
      }
    })
  }

  private async scan(ns: string | undefined, each: (items: Item[]) => void | Promise<void>): Promise<void> {
    const { ScanCommand } = await loadSdk()
    const head = ns === undefined ? this.prefix : `${this.prefix}${escapeKeyPart(ns)}:{`
    let start: Item | undefined
    do {
      const r = (await this.client.send(
        new ScanCommand({
          TableName: this.table,
          ProjectionExpression: 'pk',
          FilterExpression: 'begins_with(pk, :p)',
          ExpressionAttributeValues: { ':p': { S: head } },
          ConsistentRead: true,
          ...(start !== undefined && { ExclusiveStartKey: start as never }),
        }),
      )) as { Items?: Item[]; LastEvaluatedKey?: Item }
      await each(r.Items ?? [])
      start = r.LastEvaluatedKey
    } while (start !== undefined)
  }
}

function record(item: Item): Versioned<string> {
  return { state: JSON.parse(item.s?.S ?? '[]') as number[], version: item.v?.N ?? '', expiresAt: Number(item.e?.N) }
}

function validTable(table: string, who: string): string {
  if (typeof table !== 'string' || !/^[A-Za-z0-9_.-]{3,255}$/.test(table)) {
    throw new HaltConfigError(
      'HALT_INVALID_DYNAMODB_TABLE',
      `${who}: table must be a DynamoDB table name (3 to 255 of letters, digits, _ . -), got ${JSON.stringify(table)}. Fix: table: 'halt_state'.`,
    )
  }
  return table
}

export interface CreateDynamoTableOptions {
  /** Default `'halt_state'`. */
  table?: string
  /** Seconds to wait for the table to become ACTIVE. Default 60. */
  waitSeconds?: number
}

/**
 * Create the table a `DynamoDBStore` uses, if it does not exist: partition key `pk` (string), on-demand billing, and
 * TTL on the attribute `ttl` (epoch seconds), then wait until it is ACTIVE. Idempotent. Returns true if it created it.
 * (In infrastructure code: the same three settings; docs/stores.md.)
 */
export async function createDynamoTable(client: DynamoClientLike, options: CreateDynamoTableOptions = {}): Promise<boolean> {
  const table = validTable(options.table ?? 'halt_state', 'createDynamoTable')
  const { CreateTableCommand, DescribeTableCommand, UpdateTimeToLiveCommand, DescribeTimeToLiveCommand } = await loadSdk()
  let created = false
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    )
    created = true
  } catch (error) {
    if ((error as { name?: string })?.name !== 'ResourceInUseException') throw error
  }
  const deadline = Date.now() + (options.waitSeconds ?? 60) * 1000
  for (;;) {
    const d = (await client.send(new DescribeTableCommand({ TableName: table }))) as { Table?: { TableStatus?: string } }
    if (d.Table?.TableStatus === 'ACTIVE') break
    if (Date.now() > deadline) throw new Error(`createDynamoTable: table ${table} is not ACTIVE after ${options.waitSeconds ?? 60} s`)
    await new Promise((r) => setTimeout(r, 500))
  }
  const ttl = (await client.send(new DescribeTimeToLiveCommand({ TableName: table }))) as {
    TimeToLiveDescription?: { TimeToLiveStatus?: string; AttributeName?: string }
  }
  const status = ttl.TimeToLiveDescription?.TimeToLiveStatus
  if (status !== 'ENABLED' && status !== 'ENABLING') {
    await client.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { Enabled: true, AttributeName: 'ttl' } }))
  }
  return created
}
