// The SQL of PostgresStore: the table, and the statements of the compare-and-set loop (one round trip each).
import { HaltConfigError } from '../../core/errors.js'

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** `"schema"."table"` from `table` or `schema.table`; throws on anything else (no SQL injection through options). */
export function quoteTable(table: string): string {
  const parts = typeof table === 'string' ? table.split('.') : []
  if (parts.length < 1 || parts.length > 2 || !parts.every((p) => IDENT.test(p))) {
    throw new HaltConfigError(
      'HALT_INVALID_POSTGRES_TABLE',
      `PostgresStore: table must be a name like 'halt_state' or 'myschema.halt_state' (letters, digits, _; at most 63 each), got ${JSON.stringify(table)}.`,
    )
  }
  return parts.map((p) => `"${p}"`).join('.')
}

/**
 * The table and its index, as `PostgresStore` creates them on first use (`createTable: true`, the default). Teams that
 * migrate by hand run this once (docs/stores.md prints it for the default table name).
 *
 * - `key`: the storage key of spec/KEYS.md (`halt:api:tb:{ip:203.0.113.7}`), byte-ordered (`COLLATE "C"`) so that the
 *   primary key's index also serves the prefix scans of `clear()`;
 * - `state`: the algorithm's state, the spec's flat array of numbers, as little-endian IEEE-754 doubles (8 bytes each,
 *   exact; the layout of the Redis scripts). A `float8[]` held the same numbers at about 10% more server and 15% more
 *   client CPU per check (the array's text form is formatted, sent and parsed on every write);
 * - `version`: a random number, new with every write: the compare-and-set condition;
 * - `expires_at`: when the state is back to fresh, epoch ms in the limiter's timeline;
 * - `expires_min`: `floor(expires_at / 60000)`, the minute of it, indexed: expired rows are deleted by `cleanupExpired()`
 *   (and a timer) through this index. Not `expires_at` itself: nearly every check moves `expires_at`, and an update of an
 *   indexed column cannot be a HOT update (new entries in every index); the minute changes about once a minute.
 */
export function createTableSql(table = 'halt_state'): string {
  const t = quoteTable(table)
  const index = `"${table.split('.').pop()}_expires_min"`
  return [
    `CREATE TABLE IF NOT EXISTS ${t} (`,
    `  key         text COLLATE "C" PRIMARY KEY,`,
    '  state       bytea NOT NULL,',
    '  version     bigint NOT NULL,',
    '  expires_at  float8 NOT NULL,',
    '  expires_min bigint NOT NULL',
    ');',
    `CREATE INDEX IF NOT EXISTS ${index} ON ${t} (expires_min);`,
  ].join('\n')
}

/** The statements, built once per table. Each is one round trip. */
export interface Statements {
  /** $1 key -> state, version, expires_at */
  read: string
  /**
   * Insert, or overwrite an expired row: $1 key, $2 state, $3 expires_at, $4 now, $5 new version. Returns `version` = $5
   * when it wrote (state and expires_at null), else the live row that stands in the way.
   */
  insert: string
  /**
   * Overwrite the row if its version is still $4: $1 key, $2 state, $3 expires_at, $5 new version. Returns as `insert`;
   * no row when there is none (deleted, or a concurrent insert not visible yet).
   */
  update: string
  /** Under a row lock, in a transaction: $1 key. */
  lock: string
  /** $1 key, $2 state, $3 expires_at, $4 new version: insert, or nothing when a concurrent insert came first (no row returned). */
  lockedInsert: string
  /** $1 key, $2 state, $3 expires_at, $4 new version: overwrite the locked row. */
  lockedUpdate: string
  /** $1 LIKE pattern. */
  deleteLike: string
  /** $1 key. */
  delete: string
  /** $1 threshold (epoch ms), $2 batch size: deletes at most $2 expired rows (found through the `expires_min` index). */
  cleanup: string
  /** $1 LIKE pattern. */
  count: string
  /** The type of the table's `state` column (`bytea`; `double precision[]` in a table made before that layout). */
  stateType: string
}

const unless = (cond: string, value: string, column: string) => `CASE WHEN ${cond} THEN ${value} ELSE ${column} END`

export function statements(table: string): Statements {
  const t = quoteTable(table)
  // A conditional write that also hands back the current row when it loses, in one plain statement: on a conflict the
  // row is set to itself (CASE), and RETURNING shows it. (A data-modifying CTE with a UNION ALL fallback read did the
  // same at about 0.8x the speed.) PostgreSQL evaluates the CASE on the newest row version, under its row lock.
  const won = 't.version = $4::bigint'
  const expired = 't.expires_at <= $4::float8'
  const minute = (ms: string) => `floor(${ms} / 60000)::bigint`
  // The row only when the write lost (a won write returns its version alone: nothing to parse).
  const returning = (mine: string) =>
    `RETURNING t.version, CASE WHEN t.version = ${mine} THEN NULL ELSE t.state END AS state, CASE WHEN t.version = ${mine} THEN NULL ELSE t.expires_at END AS expires_at`
  return {
    read: `SELECT state, version, expires_at FROM ${t} WHERE key = $1`,
    insert: `INSERT INTO ${t} AS t (key, state, version, expires_at, expires_min) VALUES ($1, $2::bytea, $5::bigint, $3::float8, ${minute('$3::float8')})
      ON CONFLICT (key) DO UPDATE SET state = ${unless(expired, 'excluded.state', 't.state')},
        version = ${unless(expired, 'excluded.version', 't.version')}, expires_at = ${unless(expired, 'excluded.expires_at', 't.expires_at')},
        expires_min = ${unless(expired, 'excluded.expires_min', 't.expires_min')}
      ${returning('$5::bigint')}`,
    update: `UPDATE ${t} AS t SET state = ${unless(won, '$2::bytea', 't.state')}, version = ${unless(won, '$5::bigint', 't.version')},
        expires_at = ${unless(won, '$3::float8', 't.expires_at')}, expires_min = ${unless(won, minute('$3::float8'), 't.expires_min')}
      WHERE t.key = $1
      ${returning('$5::bigint')}`,
    lock: `SELECT state, version, expires_at FROM ${t} WHERE key = $1 FOR UPDATE`,
    lockedInsert: `INSERT INTO ${t} (key, state, version, expires_at, expires_min) VALUES ($1, $2::bytea, $4::bigint, $3::float8, ${minute('$3::float8')})
      ON CONFLICT (key) DO NOTHING RETURNING version`,
    lockedUpdate: `UPDATE ${t} SET state = $2::bytea, version = $4::bigint, expires_at = $3::float8, expires_min = ${minute('$3::float8')} WHERE key = $1`,
    deleteLike: `DELETE FROM ${t} WHERE key LIKE $1`,
    delete: `DELETE FROM ${t} WHERE key = $1`,
    cleanup: `DELETE FROM ${t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${t} WHERE expires_min <= ${minute('$1::float8')} AND expires_at <= $1::float8 LIMIT $2))`,
    count: `SELECT count(*)::int AS n FROM ${t} WHERE key LIKE $1`,
    stateType: `SELECT atttypid::regtype::text AS type FROM pg_attribute WHERE attrelid = '${t}'::regclass AND attname = 'state'`,
  }
}

/**
 * The conditional writes of `n` keys (distinct, sorted) in one statement: what `PostgresStore` sends for the checks that
 * wait while every connection is busy. Rows are locked in the order of the VALUES list (a nested loop over it), so
 * two batches lock their common keys in the same order.
 */
export interface BatchStatements {
  /**
   * `update` for each key: per row `$k key, $k+1 state, $k+2 expires_at, $k+3 the version read, $k+4 new version`.
   * Returns `key`, `version`, and `state`, `expires_at` of the rows whose write lost (null for a won one). A key with
   * no row returns nothing.
   */
  update: string
  /**
   * `insert` for each key: per row `$k key, $k+1 state, $k+2 expires_at, $k+3 new version`, then `$4n+1` now (the
   * earliest of the batch's: an expired row is overwritten only if expired for every check). Returns `key`, `version`,
   * `state`, `expires_at` of every row (a won write shows its own version).
   */
  insert: string
}

export function batchStatements(table: string, n: number): BatchStatements {
  const t = quoteTable(table)
  const rows = (width: number, row: (p: (i: number) => string) => string) => Array.from({ length: n }, (_, r) => row((i) => `$${r * width + i}`)).join(', ')
  const won = 't.version = v.old'
  const expired = `t.expires_at <= $${4 * n + 1}::float8`
  return {
    update: `UPDATE ${t} AS t SET state = ${unless(won, 'v.state', 't.state')}, version = ${unless(won, 'v.new', 't.version')},
        expires_at = ${unless(won, 'v.expires_at', 't.expires_at')}, expires_min = ${unless(won, 'floor(v.expires_at / 60000)::bigint', 't.expires_min')}
      FROM (VALUES ${rows(5, (p) => `(${p(1)}::text, ${p(2)}::bytea, ${p(3)}::float8, ${p(4)}::bigint, ${p(5)}::bigint)`)}) AS v (key, state, expires_at, old, new)
      WHERE t.key = v.key
      RETURNING t.key, t.version, CASE WHEN t.version = v.new THEN NULL ELSE t.state END AS state, CASE WHEN t.version = v.new THEN NULL ELSE t.expires_at END AS expires_at`,
    insert: `INSERT INTO ${t} AS t (key, state, version, expires_at, expires_min)
      VALUES ${rows(4, (p) => `(${p(1)}::text, ${p(2)}::bytea, ${p(4)}::bigint, ${p(3)}::float8, floor(${p(3)}::float8 / 60000)::bigint)`)}
      ON CONFLICT (key) DO UPDATE SET state = ${unless(expired, 'excluded.state', 't.state')},
        version = ${unless(expired, 'excluded.version', 't.version')}, expires_at = ${unless(expired, 'excluded.expires_at', 't.expires_at')},
        expires_min = ${unless(expired, 'excluded.expires_min', 't.expires_min')}
      RETURNING t.key, t.version, t.state, t.expires_at`,
  }
}

/** A state as the `state` column holds it: little-endian IEEE-754 doubles. */
export function packState(state: readonly number[]): Buffer {
  const b = Buffer.allocUnsafe(8 * state.length)
  for (let i = 0; i < state.length; i++) b.writeDoubleLE(state[i] as number, 8 * i)
  return b
}

/** The numbers of a `state` column value (`packState`'s inverse). */
export function unpackState(b: Uint8Array): number[] {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const state = new Array<number>(b.byteLength >> 3)
  for (let i = 0; i < state.length; i++) state[i] = view.getFloat64(8 * i, true)
  return state
}

/** A LIKE pattern matching every string that starts with `prefix` (`\` is LIKE's default escape). */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
}
