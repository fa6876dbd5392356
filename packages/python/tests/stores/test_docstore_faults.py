"""Failure policy on real outages of FerretDB (MongoDBStore, AsyncMongoDBStore: SIGKILLed under load, restarted on
its port) and moto (DynamoDBStore: frozen with SIGSTOP, thawed: a restart would lose its in-memory tables), on the
harness of tests/stores/faults.py."""

from __future__ import annotations

import os

import pytest

from tests.stores.factories import open_dynamodb, open_mongodb
from tests.stores.faults import FaultCase, run_fault

# The emulators answer concurrent loops slowly (FerretDB on SQLite serialises writes; moto serves one request at a
# time): at 250 ms a healthy one would look down. TypeScript runs 4 and 10 loops per mode; with more than 2 and 5
# here a loaded 2-core machine made a healthy FerretDB miss 1000 ms.
FERRETDB_MS = 1000
MOTO_MS = 500

CASES = [
    FaultCase(
        name=f"FerretDB, {'MongoDBStore' if form == 'sync' else 'AsyncMongoDBStore'}",
        service="mongodb",
        printed="HALT_TEST_FERRETDB_URL",
        outage="kill",
        timeout=FERRETDB_MS,
        loops=2,
        # A sync store's bound is pymongo.timeout(), whose deadline pymongo's server selection looks at only every
        # 500 ms (topology.py, _select_servers_loop: _cond_wait(..., MIN_HEARTBEAT_INTERVAL)); measured 1.27-1.48 s.
        overshoot=500 if form == "sync" else 0,
        open=lambda url, lane, form=form: open_mongodb(url, f"fault_{lane}", "halt:", form, str(FERRETDB_MS)),
    )
    for form in ("sync", "asyncio")
] + [
    FaultCase(
        name="DynamoDB (moto), DynamoDBStore",
        service="dynamodb",
        printed="HALT_TEST_DYNAMODB_URL",
        outage="stall",
        pid_file="dynamodb/dynamodb.pid",
        timeout=MOTO_MS,
        loops=5,
        open=lambda url, lane: open_dynamodb(url, f"fault_{lane}", "halt:", str(MOTO_MS), create=True),
    )
]


@pytest.mark.parametrize("case", CASES, ids=["ferretdb-sync", "ferretdb-async", "moto-sync"])
def test_outage_in_the_middle_of_a_load(case: FaultCase) -> None:
    if not os.environ.get(case.printed):  # where the shared server of this kind is provisioned (npm test starts them)
        if os.environ.get("CI"):
            pytest.fail(f"{case.printed} is not set: scripts/test.sh starts the servers")
        pytest.skip(f"{case.printed} not set")
    print("\n" + run_fault(case))
