"""The MongoDB and DynamoDB test servers (scripts/services.sh exports their addresses): FerretDB v1.24.2 always, a real
MongoDB when HALT_TEST_MONGODB_URL names one, moto's DynamoDB server; and clients on them."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Optional, TypeVar, Union

import pytest

T = TypeVar("T")

FERRETDB_LABEL = "FerretDB v1.24.2 (SQLite)"


def mongo_servers() -> list[tuple[str, Optional[str], bool]]:
    """(label, url, real MongoDB?) of each MongoDB server to test on: FerretDB (its url None when it is not started:
    the tests then skip, or fail under CI), and a real MongoDB only when HALT_TEST_MONGODB_URL is set (CI has none)."""
    servers: list[tuple[str, Optional[str], bool]] = [(FERRETDB_LABEL, os.environ.get("HALT_TEST_FERRETDB_URL"), False)]
    real = os.environ.get("HALT_TEST_MONGODB_URL")
    if real:
        servers.append(("MongoDB", real, True))
    return servers


def need(url: Optional[str], var: str) -> str:
    """``url``, or skip the test (fail it under CI: CI must run the integration tests)."""
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{var} is not set: scripts/test.sh starts the servers")
    pytest.skip(f'{var} not set (run: eval "$(scripts/services.sh start dynamodb mongodb)")')


def dynamodb_url() -> str:
    return need(os.environ.get("HALT_TEST_DYNAMODB_URL"), "HALT_TEST_DYNAMODB_URL")


def dynamo_client(url: str, **config: Any) -> Any:
    """A boto3 client on moto (any credentials do), with the store's client settings unless ``config`` says
    otherwise, and timeouts for an emulator that is slow under load."""
    import boto3
    from botocore.config import Config

    from halt.stores.dynamodb import client_config

    settings = {"read_timeout": 10, "connect_timeout": 5, **config}
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="halt",
        aws_secret_access_key="halt",
        config=client_config().merge(Config(**settings)),
    )


#: What the MongoDB tests' own clients get: fail fast while the server is unreachable, rediscover it soon, and time
#: out slowly under a load that FerretDB on SQLite answers slowly.
MONGO_OPTIONS = {"serverSelectionTimeoutMS": 2000, "heartbeatFrequencyMS": 1000, "timeoutMS": 10_000, "maxPoolSize": 20}


def at_once(calls: list[Callable[[], T]]) -> list[Union[T, BaseException]]:
    """Run each call in a thread of its own, all released together; their results (or what they raised), in order."""
    out: list[Union[T, BaseException]] = [RuntimeError("not run")] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        try:
            out[i] = calls[i]()
        except BaseException as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
