"""DynamoDBStore: one item per key, updated by the compare-and-set loop of halt.stores.cas with conditional PutItem
on boto3. The items and the table are the TypeScript store's, attribute for attribute, so a Node and a Python service
share one table."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from halt.core.errors import HaltConfigError
from halt.stores.cas import CasStore, Next, Versioned, Written, bounded_key, check_prefix, check_timeout, new_version
from halt.stores.redis.keys import escape_key_part
from halt.stores.redis.store import num_arg

Item = Mapping[str, Mapping[str, str]]

_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


def client_config(timeout: float = 500) -> Any:
    """The botocore settings of a client the store makes for itself: connecting and reading each bounded by
    ``timeout`` ms, one attempt (a synchronous call cannot be abandoned from outside, so this is what bounds a check;
    a retry would double the wait, and the limiter's failure policy answers an error at once), and connections
    for 50 threads."""
    from botocore.config import Config

    return Config(
        connect_timeout=timeout / 1000,
        read_timeout=timeout / 1000,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=50,
    )


def _number(text: str) -> float:
    """An N attribute as JavaScript's ``Number()`` reads it (whole numbers as ints)."""
    v = float(text)
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def _record(item: Item) -> Versioned[str]:
    return Versioned(json.loads(item["s"]["S"]), item["v"]["N"], _number(item["e"]["N"]))


def _state_json(state: Any) -> str:
    """The state as JSON, each number as JavaScript writes it (``JSON.stringify`` in the TypeScript store): the
    items of both SDKs are then byte for byte alike, and every double is read back exactly."""
    return "[" + ",".join(num_arg(x) for x in state) + "]"


def valid_table(table: object, who: str) -> str:
    if not isinstance(table, str) or not _TABLE.match(table):
        raise HaltConfigError(
            "HALT_INVALID_DYNAMODB_TABLE",
            f"{who}: table_name must be a DynamoDB table name (3 to 255 of letters, digits, _ . -), got {table!r}. "
            "Fix: table_name='halt_state'.",
        )
    return table


def _client(
    client: Any, region_name: Optional[str], endpoint_url: Optional[str], config: Any, timeout: float, who: str
) -> Any:
    """The boto3 client given, or one made from the region (and endpoint) with ``client_config(timeout)``, and
    ``config`` over it."""
    if client is not None:
        if region_name is not None or endpoint_url is not None:
            raise HaltConfigError(
                "HALT_INVALID_DYNAMODB_CLIENT",
                f"{who}: give a client, or region_name (and endpoint_url) for the store to make one, not both.",
            )
        if not callable(getattr(client, "put_item", None)) or not callable(getattr(client, "get_item", None)):
            raise HaltConfigError(
                "HALT_INVALID_DYNAMODB_CLIENT",
                f"{who} needs a DynamoDB client of boto3, got {type(client).__name__}. "
                "Fix: DynamoDBStore(client=boto3.client('dynamodb')), or DynamoDBStore(region_name='eu-west-1').",
            )
        return client
    import boto3

    base = client_config(timeout)
    return boto3.client(
        "dynamodb",
        region_name=region_name,
        endpoint_url=endpoint_url,
        config=base if config is None else base.merge(config),
    )


class DynamoDBStore(CasStore[str]):
    """A store in DynamoDB (boto3, synchronous: asyncio code calls it through the limiter's ``a``-methods, which
    run it in a worker thread): one item per key. Every check runs the algorithm in this process (the spec's pure
    function) and writes the item with ``PutItem`` on the condition that its version is still the one seen (or
    that there is none, or that it has expired); a failed condition hands back the item as it stands
    (``ReturnValuesOnConditionCheckFailure``), so a new key, or a key this process wrote last, costs one request,
    and a conflict costs no extra read. The items are those of the TypeScript ``DynamoDBStore``.

    DynamoDB deletes expired items (TTL attribute ``ttl``) late, up to days: that frees space only. An expired item
    that is still there decides exactly as a missing one, and the insert condition overwrites it.

    Give it a boto3 client, or ``region_name`` (and ``endpoint_url``) for the store to make one (credentials from
    boto3's usual chain) with ``client_config(timeout)``: one attempt per request, connecting and reading each
    bounded by ``timeout`` ms (default 500), ``client_config`` (a botocore ``Config``) over it. With a client of
    your own, bound it likewise (``read_timeout``, ``connect_timeout``, ``retries``): nothing else can.

    Example::

        from halt import RateLimiter
        from halt.stores.dynamodb import DynamoDBStore, create_dynamo_table

        store = DynamoDBStore(table_name="halt_state", region_name="eu-west-1")
        create_dynamo_table(store.client, table_name="halt_state")  # once, or in your infrastructure code
        limiter = RateLimiter(store=store, policy={"name": "api", "limit": 100, "window": "1m"})
    """

    speculation = "always"

    def __init__(
        self,
        table_name: str = "halt_state",
        *,
        region_name: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        client: Any = None,
        client_config: Any = None,
        prefix: str = "halt:",
        max_attempts: int = 100,
        expiry_grace_ms: int = 0,
        timeout: float = 500,
    ) -> None:
        super().__init__("DynamoDBStore", max_attempts, expiry_grace_ms)
        self.table = valid_table(table_name, "DynamoDBStore")
        self.prefix = check_prefix(prefix, "DynamoDBStore")
        self._owned = client is None
        timeout = check_timeout("DynamoDBStore", timeout)
        self.client = _client(client, region_name, endpoint_url, client_config, timeout, "DynamoDBStore")

    def close(self) -> None:
        """Close the client if the store made it."""
        if self._owned:
            self.client.close()

    def key(self, ns: str, id: str) -> str:
        """The item's partition key ``pk`` for ``id`` under ``ns`` (spec/KEYS.md; hashed beyond 1024 bytes)."""
        return bounded_key(self.prefix, ns, id)

    def size(self, ns: Optional[str] = None) -> int:
        """Items held (of a namespace, or under the prefix): a full Scan, for tests and small tables only."""
        return sum(len(page) for page in self._scan(ns))

    def _read(self, key: str, ns: str) -> Optional[Versioned[str]]:
        # Strongly consistent: a decision may rest on this read alone (a rejection writes nothing).
        r = self.client.get_item(TableName=self.table, Key={"pk": {"S": key}}, ConsistentRead=True)
        item = r.get("Item")
        return None if item is None else _record(item)

    def _write(self, key: str, ns: str, nxt: Next, prev: Optional[Versioned[str]]) -> Written[str]:
        version = str(new_version())
        item = {
            "pk": {"S": key},
            "s": {"S": _state_json(nxt.state)},
            "v": {"N": version},
            "e": {"N": num_arg(nxt.expires_at)},
            "ttl": {"N": str(math.ceil((time.time() * 1000 + nxt.ttl_ms) / 1000))},
        }
        if prev is None:
            condition = "attribute_not_exists(pk) OR e <= :now"
            values = {":now": {"N": num_arg(nxt.now)}}
        else:
            condition = "v = :v"
            values = {":v": {"N": prev.version}}
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as e:
            if _error_code(e) != "ConditionalCheckFailedException":
                raise
            current = getattr(e, "response", {}).get("Item")
            return Written.lost(None if current is None else _record(current))
        return Written.won(version)

    def _remove(self, key: str, ns: str) -> None:
        self.client.delete_item(TableName=self.table, Key={"pk": {"S": key}})

    def _remove_all(self, ns: Optional[str]) -> None:
        """A Scan of the table for the prefix, deleting what it finds in batches of 25: an administrative
        operation, not a hot path."""
        for page in self._scan(ns):
            for i in range(0, len(page), 25):
                requests: Mapping[str, Any] = {
                    self.table: [{"DeleteRequest": {"Key": {"pk": it["pk"]}}} for it in page[i : i + 25]]
                }
                rounds = 0
                while requests:
                    if rounds > 0:
                        time.sleep(min(1.0, 0.05 * 2**rounds))
                    requests = self.client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
                    rounds += 1

    def _scan(self, ns: Optional[str]) -> Iterator[list[Item]]:
        head = self.prefix if ns is None else f"{self.prefix}{escape_key_part(ns)}:{{"
        start: Optional[Item] = None
        while True:
            args: dict[str, Any] = {
                "TableName": self.table,
                "ProjectionExpression": "pk",
                "FilterExpression": "begins_with(pk, :p)",
                "ExpressionAttributeValues": {":p": {"S": head}},
                "ConsistentRead": True,
            }
            if start is not None:
                args["ExclusiveStartKey"] = start
            r = self.client.scan(**args)
            yield list(r.get("Items") or [])
            start = r.get("LastEvaluatedKey")
            if start is None:
                return


def _error_code(e: BaseException) -> Optional[str]:
    """The AWS error code of a botocore ClientError (None for anything else)."""
    response = getattr(e, "response", None)
    if not isinstance(response, Mapping):
        return None
    code = (response.get("Error") or {}).get("Code")
    return code if isinstance(code, str) else None


def create_dynamo_table(client: Any, table_name: str = "halt_state", wait_seconds: float = 60) -> bool:
    """Create the table a ``DynamoDBStore`` uses, if it does not exist: partition key ``pk`` (string), on-demand
    billing, and TTL on the attribute ``ttl`` (epoch seconds), then wait until it is ACTIVE. Idempotent. Returns
    True if it created it. (In infrastructure code: the same three settings; docs/stores.md.)

    Example::

        create_dynamo_table(boto3.client("dynamodb"), table_name="halt_state")
    """
    table = valid_table(table_name, "create_dynamo_table")
    created = False
    try:
        client.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        created = True
    except Exception as e:
        if _error_code(e) != "ResourceInUseException":
            raise
    deadline = time.monotonic() + wait_seconds
    while client.describe_table(TableName=table).get("Table", {}).get("TableStatus") != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"create_dynamo_table: table {table} is not ACTIVE after {wait_seconds} s")
        time.sleep(0.5)
    ttl = client.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    return created


__all__ = ["DynamoDBStore", "client_config", "create_dynamo_table"]
