// halt/mongodb: MongoDBStore over the official `mongodb` driver.
export { CasConflictError, type CasCounters, type CasStoreOptions } from '../cas.js'
export { type HaltDocument, type MongoCollectionLike, MongoDBStore, type MongoDBStoreOptions } from './store.js'
