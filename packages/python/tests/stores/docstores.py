"""The MongoDB and DynamoDB test servers (scripts/services.sh exports their addresses): FerretDB v1.24.2 always, a real
MongoDB when HALT_TEST_MONGODB_URL names one, moto's DynamoDB server; and clients on them."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

import pytest

T = TypeVar("T")

FERRETDB_LABEL = "FerretDB v1.24.2 (SQLite)"
#: What the MongoDB tests' own clients get: fail fast while the server is unreachable, rediscover it soon.
MONGO_OPTIONS = {"serverSelectionTimeoutMS": 2000, "heartbeatFrequencyMS": 1000, "maxPoolSize": 20}
#: A store timeout (ms) for tests under load, which FerretDB on SQLite and moto answer slowly.
SLOW_MS = 10_000


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


def dynamo_client(url: str, timeout: float = SLOW_MS) -> Any:
    """A boto3 client on moto (any credentials do) with the store's own client settings for ``timeout`` ms."""
    import boto3

    from halt.stores.dynamodb import client_config

    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="halt",
        aws_secret_access_key="halt",
        config=client_config(timeout),
    )


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


SERVICES_DIR = Path(os.environ.get("HALT_SERVICES_DIR", Path(__file__).resolve().parents[4] / ".services"))
_PID_FILES = {"mongodb": "mongodb/ferretdb.pid", "dynamodb": "dynamodb/dynamodb.pid"}


def service_pid(service: str, services_dir: Optional[Path] = None) -> int:
    """The pid of a server that scripts/services.sh started (FerretDB or moto)."""
    return int((Path(services_dir or SERVICES_DIR) / _PID_FILES[service]).read_text().strip())


def pause(pid: int, ms: float) -> None:
    """Freeze a server process for ``ms`` (SIGSTOP, then SIGCONT): it accepts nothing and answers nothing meanwhile."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(ms / 1000)
    finally:
        os.kill(pid, signal.SIGCONT)
