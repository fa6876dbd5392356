"""DynamoDB store (extra ``dynamodb``): DynamoDBStore on boto3, the TypeScript store's items and table."""

from halt.stores.dynamodb.store import DynamoDBStore, client_config, create_dynamo_table

__all__ = ["DynamoDBStore", "client_config", "create_dynamo_table"]
