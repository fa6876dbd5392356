// The TypeScript key functions of the compare-and-set stores, for the Python tests: reads a JSON list of
// [function, ...args] on stdin, prints the list of results.
import { boundedKey, hasSpaceOrControl, keyDigest } from '../../../typescript/src/stores/cas.js'
import { globalKey, namespaceKey, stateKey } from '../../../typescript/src/stores/memcached/keys.js'
import { createTableSql } from '../../../typescript/src/stores/postgres/sql.js'
import { PostgresStore } from '../../../typescript/src/stores/postgres/store.js'

const chunks: Buffer[] = []
for await (const c of process.stdin) chunks.push(c as Buffer)
const cases = JSON.parse(Buffer.concat(chunks).toString('utf8')) as [string, ...string[]][]
const pg = new PostgresStore({ pool: { query: async () => ({ rows: [], rowCount: 0 }) }, cleanupInterval: 0 })
const fns: Record<string, (...a: string[]) => unknown> = {
  bounded: (p, ns, id) => boundedKey(p as string, ns as string, id as string),
  digest: (k) => keyDigest(k as string),
  space: (s) => hasSpaceOrControl(s as string),
  memcached: (p, ns, id) => stateKey(p as string, ns as string, id as string),
  memcachedNs: (p, ns) => namespaceKey(p as string, ns as string),
  memcachedGlobal: (p) => globalKey(p as string),
  postgres: (ns, id) => pg.key(ns as string, id as string),
  ddl: (table) => createTableSql(table as string),
  // The advisory lock id PostgresStore takes for the table's creation (the SQL it sends names it).
  lockId: (table) => {
    let sent = ''
    const probe = new PostgresStore({
      table: table as string,
      cleanupInterval: 0,
      pool: {
        query: async (q: { text: string }) => {
          if (sent === '') sent = q.text
          return { rows: [{ type: 'bytea' }], rowCount: 1 } // the layout check's answer
        },
      },
    })
    return (probe as unknown as { create(): Promise<void> }).create().then(() => Number(/pg_advisory_xact_lock\((\d+)\)/.exec(sent)?.[1]))
  },
}
console.log(JSON.stringify(await Promise.all(cases.map(([fn, ...args]) => (fns[fn] as (...a: string[]) => unknown)(...args)))))
