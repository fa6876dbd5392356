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
 * - `state`: the algorithm's state, the spec's flat array of numbers, exactly (float8 is an IEEE double);
 * - `version`: a random number, new with every write: the compare-and-set condition;
 * - `expires_at`: when the state is back to fresh, epoch ms in the limiter's timeline; expired rows are deleted by
 *   `cleanupExpired()` (and a timer), through the index.
 */
export function createTableSql(table = 'halt_state'): string {
  const t = quoteTable(table)
  const index = `"${table.split('.').pop()}_expires_at"`
  return [
    `CREATE TABLE IF NOT EXISTS ${t} (`,
    `  key        text COLLATE "C" PRIMARY KEY,`,
    '  state      float8[] NOT NULL,',
    '  version    bigint NOT NULL,',
    '  expires_at float8 NOT NULL',
    ');',
    `CREATE INDEX IF NOT EXISTS ${index} ON ${t} (expires_at);`,
  ].join('\n')
}

/** The statements, built once per table. Each is one round trip. */
export interface Statements {
  /** $1 key -> state, version, expires_at */
  read: string
  /**
   * Insert, or overwrite an expired row: $1 key, $2 state, $3 expires_at, $4 now, $5 new version. Returns one row: `written` (the new
   * version) when it wrote; else the row that stands in the way, as of the statement's start (none when it is not
   * visible yet: a concurrent insert that committed meanwhile).
   */
  insert: string
  /** Update if the version is still $4: $1 key, $2 state, $3 expires_at, $5 new version. Returns as `insert`. */
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
  /** $1 threshold (epoch ms), $2 batch size: deletes at most $2 expired rows. */
  cleanup: string
  /** $1 LIKE pattern. */
  count: string
}

export function statements(table: string): Statements {
  const t = quoteTable(table)
  // The conflicting row, when the write did not happen: read in the same statement, so a conflict costs no extra round trip.
  const current = (w: string) =>
    `SELECT ${w}.version AS written, NULL::float8[] AS state, NULL::bigint AS version, NULL::float8 AS expires_at FROM ${w}
     UNION ALL
     SELECT NULL, s.state, s.version, s.expires_at FROM ${t} s WHERE s.key = $1 AND NOT EXISTS (SELECT 1 FROM ${w})`
  return {
    read: `SELECT state, version, expires_at FROM ${t} WHERE key = $1`,
    insert: `WITH w AS (
      INSERT INTO ${t} AS t (key, state, version, expires_at) VALUES ($1, $2::float8[], $5::bigint, $3)
      ON CONFLICT (key) DO UPDATE SET state = excluded.state, version = excluded.version, expires_at = excluded.expires_at
      WHERE t.expires_at <= $4::float8
      RETURNING t.version)
    ${current('w')}`,
    update: `WITH w AS (
      UPDATE ${t} SET state = $2::float8[], version = $5::bigint, expires_at = $3 WHERE key = $1 AND version = $4::bigint
      RETURNING version)
    ${current('w')}`,
    lock: `SELECT state, version, expires_at FROM ${t} WHERE key = $1 FOR UPDATE`,
    lockedInsert: `INSERT INTO ${t} (key, state, version, expires_at) VALUES ($1, $2::float8[], $4::bigint, $3) ON CONFLICT (key) DO NOTHING RETURNING version`,
    lockedUpdate: `UPDATE ${t} SET state = $2::float8[], version = $4::bigint, expires_at = $3 WHERE key = $1`,
    deleteLike: `DELETE FROM ${t} WHERE key LIKE $1`,
    delete: `DELETE FROM ${t} WHERE key = $1`,
    cleanup: `DELETE FROM ${t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${t} WHERE expires_at <= $1::float8 LIMIT $2))`,
    count: `SELECT count(*)::int AS n FROM ${t} WHERE key LIKE $1`,
  }
}

/** A LIKE pattern matching every string that starts with `prefix` (`\` is LIKE's default escape). */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
}
