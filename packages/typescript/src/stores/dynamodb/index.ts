// halt/dynamodb: DynamoDBStore over the AWS SDK v3 (`@aws-sdk/client-dynamodb`), and a table-creation helper.
export { CasConflictError, type CasCounters, type CasStoreOptions } from '../cas.js'
export { type CreateDynamoTableOptions, createDynamoTable, type DynamoClientLike, DynamoDBStore, type DynamoDBStoreOptions } from './store.js'
