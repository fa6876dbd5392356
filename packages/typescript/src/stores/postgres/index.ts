// halt/postgres: PostgresStore over node-postgres (`pg`), and the table's SQL for teams that migrate by hand.
export { CasConflictError, type CasCounters, type CasStoreOptions } from '../cas.js'
export { createTableSql, packState, unpackState } from './sql.js'
export { type PgPoolClient, type PgPoolLike, type PgQuery, type PgResult, PostgresStore, type PostgresStoreOptions } from './store.js'
