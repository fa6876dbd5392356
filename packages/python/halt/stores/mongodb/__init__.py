"""MongoDB stores (extra ``mongodb``): MongoDBStore and AsyncMongoDBStore on pymongo, with the TypeScript
store's documents."""

from halt.stores.mongodb.store import CLIENT_DEFAULTS, AsyncMongoDBStore, MongoDBStore, bson_number

__all__ = ["CLIENT_DEFAULTS", "AsyncMongoDBStore", "MongoDBStore", "bson_number"]
