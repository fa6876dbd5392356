"""The store-conformance suite on DynamoDBStore, on moto's DynamoDB server (docs/stores.md says why not DynamoDB
Local). moto never deletes expired items: the suite checks that they decide as fresh ones."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from halt.stores.dynamodb import DynamoDBStore, create_dynamo_table
from tests.stores.conformance import *  # noqa: F403  (the test functions)
from tests.stores.conformance import Inspected, StoreHarness
from tests.stores.docstores import dynamo_client, dynamodb_url, pause, service_pid

#: The store's own bound on a check while moto is frozen: the client's read timeout, one attempt.
STALL_MS = 500


@pytest.fixture(scope="module")
def harness() -> Iterator[StoreHarness]:
    url = dynamodb_url()
    table = f"halt_conf_{uuid.uuid4().hex[:8]}"
    client = dynamo_client(url, STALL_MS)
    create_dynamo_table(client, table_name=table)

    def inspect(store: DynamoDBStore, ns: str, id: str) -> Optional[Inspected]:
        r = client.get_item(TableName=table, Key={"pk": {"S": store.key(ns, id)}}, ConsistentRead=True)
        item = r.get("Item")
        return None if item is None else Inspected(state=json.loads(item["s"]["S"]))

    def no_wait(_store: Any, _at: float) -> None:
        """Neither DynamoDB's TTL (late: up to days) nor moto's (never) can be awaited: expiry shows in decisions."""

    yield StoreHarness(
        name="DynamoDBStore on moto",
        create=lambda: DynamoDBStore(table, client=client),
        inspect=inspect,
        expire=no_wait,
        drops_expired=False,
        stall=lambda _store, ms: pause(service_pid("dynamodb"), ms),
        stall_timeout_ms=STALL_MS,
        worker=("tests.stores.factories:open_dynamodb", [url, table, "halt:"]),
    )
    client.delete_table(TableName=table)
    client.close()
