"""DynamoDBStore on moto's DynamoDB server (AWS's DynamoDB Local is excluded by its licence, docs/stores.md): what the
server guarantees, and the store's own: the TypeScript store's items, the table helper, one request per check, a
conflict that hands back the item, options. The conformance suite runs in test_docstores_conformance.py."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from halt import HaltConfigError, Policy, RateLimiter
from halt.core.policy import compile_policy
from halt.stores.dynamodb import DynamoDBStore, create_dynamo_table
from tests.stores.docstores import at_once, dynamo_client, dynamodb_url

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def client() -> Any:
    return dynamo_client(dynamodb_url())


@pytest.fixture(scope="module")
def table(client: Any) -> Iterator[str]:
    name = f"halt_{uuid.uuid4().hex[:8]}"
    assert create_dynamo_table(client, table_name=name) is True
    assert create_dynamo_table(client, table_name=name) is False  # idempotent
    yield name
    client.delete_table(TableName=name)


def test_conditional_writes_are_isolated_on_moto(client: Any, table: str) -> None:
    """Of 20 concurrent PutItem on one version exactly one succeeds, 50 rounds (moto's threaded server runs each
    request's Python under the interpreter lock; docs/stores.md): what the exact concurrency test rests on."""
    wins = set()
    for round_ in range(50):
        pk = {"S": f"race-{round_}"}
        client.put_item(TableName=table, Item={"pk": pk, "v": {"N": "0"}})
        put = functools.partial(
            client.put_item,
            TableName=table,
            ConditionExpression="v = :v",
            ExpressionAttributeValues={":v": {"N": "0"}},
        )
        results = at_once([functools.partial(put, Item={"pk": pk, "v": {"N": str(i + 1)}}) for i in range(20)])
        failures = {type(r).__name__ for r in results if isinstance(r, BaseException)}
        assert failures == {"ConditionalCheckFailedException"}, (round_, results)
        wins.add(sum(1 for r in results if not isinstance(r, BaseException)))
    print(f"moto: successful conditional writes per round of 20: {wins}")
    assert wins == {1}


def test_a_failed_condition_hands_back_the_item(client: Any, table: str) -> None:
    pk = {"S": "handback"}
    client.put_item(TableName=table, Item={"pk": pk, "v": {"N": "7"}, "s": {"S": "[0,1,2]"}})
    with pytest.raises(client.exceptions.ConditionalCheckFailedException) as e:
        client.put_item(
            TableName=table,
            Item={"pk": pk, "v": {"N": "8"}},
            ConditionExpression="v = :v",
            ExpressionAttributeValues={":v": {"N": "6"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert e.value.response["Item"] == {"pk": pk, "v": {"N": "7"}, "s": {"S": "[0,1,2]"}}


def test_stores_the_typescript_item_and_the_table_has_ttl_on_ttl(client: Any, table: str) -> None:
    store = DynamoDBStore(table, client=client)
    rule = compile_policy(Policy(name="layout", limit=10, window=60))
    now = int(time.time() * 1000)
    store.consume(rule.ns, "user:42", rule, now, 3)
    item = client.get_item(TableName=table, Key={"pk": {"S": "halt:layout:tb:{user:42}"}}, ConsistentRead=True)["Item"]
    assert set(item) == {"pk", "s", "v", "e", "ttl"}
    assert item["s"] == {"S": f"[0,7,{now}]"}  # JSON as JavaScript writes it
    assert item["e"] == {"N": str(now + 18_000)}
    assert (now + 18_000) // 1000 <= int(item["ttl"]["N"]) <= -(-(int(time.time() * 1000) + 18_000) // 1000)
    assert 0 < int(item["v"]["N"]) < 2**53
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"AttributeName": "ttl", "TimeToLiveStatus": "ENABLED"}


def test_one_request_per_check_for_a_new_key_or_one_this_process_wrote_last(client: Any, table: str) -> None:
    rule = compile_policy(Policy(name="rt", limit=100, window=60))
    store = DynamoDBStore(table, client=client)
    other = DynamoDBStore(table, client=client)
    c = store.counters
    for i in range(10):
        store.consume(rule.ns, "k", rule, T0 + i, 1)
    assert (c.writes, c.reads) == (10, 0)
    other.consume(rule.ns, "k", rule, T0 + 20, 1)  # another process writes the key
    o = store.consume(rule.ns, "k", rule, T0 + 21, 1)
    assert o.remaining == 88
    # The lost write handed back the item: one write more, no read.
    assert (c.writes, c.conflicts, c.reads) == (12, 1, 0)


def test_an_expired_item_dynamodb_has_not_deleted_yet_is_overwritten_by_the_insert_condition(
    client: Any, table: str
) -> None:
    rule = compile_policy(Policy(name="exp", limit=2, window=1))
    store = DynamoDBStore(table, client=client)
    fresh = DynamoDBStore(table, client=client)  # no guess of the key: it inserts
    store.consume(rule.ns, "k", rule, T0, 2)
    o = fresh.consume(rule.ns, "k", rule, T0 + 5_000, 1)
    assert (o.allowed, o.remaining) == (True, 1)
    assert fresh.counters.as_dict() == {"checks": 1, "reads": 0, "writes": 1, "conflicts": 0, "locked": 0}


def test_clear_and_size_page_through_the_scan_and_delete_in_batches_of_25(client: Any, table: str) -> None:
    store = DynamoDBStore(table, client=client, prefix="many:")
    rule = compile_policy(Policy(name="many", limit=5, window=60))
    keep = compile_policy(Policy(name="keep", limit=5, window=60))
    for i in range(60):
        store.consume(rule.ns, f"id-{i}", rule, T0, 1)
    store.consume(keep.ns, "one", keep, T0, 1)
    assert (store.size(rule.ns), store.size()) == (60, 61)
    store.clear(rule.ns)
    assert (store.size(rule.ns), store.size()) == (0, 1)
    store.clear()
    assert store.size() == 0


def test_table_name_and_region_name_make_a_client_with_fail_fast_settings(monkeypatch: Any) -> None:
    url = dynamodb_url()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "halt")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "halt")
    store = DynamoDBStore(table_name="halt_state", region_name="us-east-1", endpoint_url=url, timeout=2000)
    config = store.client.meta.config
    assert (config.connect_timeout, config.read_timeout, config.max_pool_connections) == (2, 2, 50)
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
    create_dynamo_table(store.client)  # the default table: halt_state
    rule = compile_policy(Policy(name="owned", limit=5, window=60))
    assert store.consume(rule.ns, "k", rule, T0, 1).remaining == 4
    store.clear()
    store.client.delete_table(TableName="halt_state")
    store.close()


def test_options_are_checked(client: Any) -> None:
    def code(**kwargs: Any) -> str:
        with pytest.raises(HaltConfigError) as e:
            DynamoDBStore(**kwargs)
        return e.value.code

    assert code(client=object()) == "HALT_INVALID_DYNAMODB_CLIENT"
    assert code(client=client, region_name="us-east-1") == "HALT_INVALID_DYNAMODB_CLIENT"
    assert code(client=client, table_name="ab") == "HALT_INVALID_DYNAMODB_TABLE"
    assert code(client=client, table_name="a b c") == "HALT_INVALID_DYNAMODB_TABLE"
    assert code(client=client, prefix="}") == "HALT_INVALID_STORE_PREFIX"
    assert code(client=client, max_attempts=1.5) == "HALT_INVALID_CAS_ATTEMPTS"
    assert code(client=client, timeout=float("nan")) == "HALT_INVALID_TIMEOUT"
    with pytest.raises(HaltConfigError) as e:
        create_dynamo_table(client, table_name="x")
    assert e.value.code == "HALT_INVALID_DYNAMODB_TABLE"


async def test_an_asyncio_app_checks_through_acheck_without_blocking_the_event_loop(client: Any, table: str) -> None:
    """boto3 is synchronous: acheck() runs the store in the loop's executor. 60 concurrent checks of one key and one
    each of 60 others, limit 30: exactly 30 admitted on the hot key, and a ticker task keeps running meanwhile (on a
    blocked loop it could not tick until the checks were over)."""
    limiter = RateLimiter(store=DynamoDBStore(table, client=client), policy=Policy(name="aio", limit=30, window=3600))
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            await asyncio.sleep(0.002)
            ticks.append(time.perf_counter())

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    hot = asyncio.gather(*(limiter.acheck("hot") for _ in range(60)))
    others = asyncio.gather(*(limiter.acheck(f"k{i}") for i in range(60)))
    decisions, spread = await asyncio.gather(hot, others)
    t1 = time.perf_counter()
    done.set()
    await tick
    assert sum(d.allowed for d in decisions) == 30 and all(d.allowed for d in spread)
    assert limiter.stats().blocked == 30  # no store errors
    during = sum(1 for t in ticks if t0 < t < t1)
    print(f"{t1 - t0:.3f} s of checks, {during} ticks meanwhile")
    assert during >= 5
