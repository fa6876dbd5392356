"""Failure policy on real outages of PostgreSQL and Memcached (tests/stores/faults.py): each server, an instance of
its own, SIGKILLed in the middle of a load and restarted on the same port, under sync (threads) and asyncio stores."""

from __future__ import annotations

import os

import pytest

from tests.stores.factories import open_memcached, open_postgres
from tests.stores.faults import FaultCase, run_fault

# Above the TypeScript tests' 100 ms: one Python process (30 loops on one event loop, or 30 threads under the GIL)
# on a shared 2-core machine answers a healthy check late now and then.
TIMEOUT = 250
# psycopg's asyncio pool on one event loop with every lane's checks answered a healthy check past 250 ms in a quiet
# CI run (once in several): its timeout is 500 ms.
ASYNC_PG_TIMEOUT = 500

CASES = (
    [
        FaultCase(
            name="PostgreSQL",
            service="postgres",
            printed="HALT_TEST_POSTGRES_URL",
            outage="kill",
            timeout=TIMEOUT if form == "sync" else ASYNC_PG_TIMEOUT,
            open=lambda url, lane, form=form: open_postgres(
                url, f"fault_{lane}", "halt:", form, str(TIMEOUT if form == "sync" else ASYNC_PG_TIMEOUT), "10"
            ),
        )
        for form in ("sync", "async")
    ]
    + [
        # Frozen, not killed: the host still acknowledges TCP, so only the store's own deadlines bound a sync check.
        FaultCase(
            name="PostgreSQL",
            service="postgres",
            printed="HALT_TEST_POSTGRES_URL",
            outage="stall",
            pid_file="postgres/data/postmaster.pid",
            timeout=TIMEOUT,
            open=lambda url, lane: open_postgres(url, f"fault_{lane}", "halt:", "sync", str(TIMEOUT), "10"),
        )
    ]
    + [
        FaultCase(
            name="Memcached",
            service="memcached",
            printed="HALT_TEST_MEMCACHED_URL",
            outage="kill",
            timeout=TIMEOUT,
            open=lambda url, lane, form=form: open_memcached(url, f"{lane}:", form, str(TIMEOUT)),
        )
        for form in ("sync", "async")
    ]
)


IDS = ["postgres-sync", "postgres-async", "postgres-sync-frozen", "memcached-sync", "memcached-async"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_killed_and_restarted_in_the_middle_of_a_load(case: FaultCase) -> None:
    var = {"postgres": "HALT_TEST_POSTGRES_URL", "memcached": "HALT_TEST_MEMCACHED_URL"}[case.service]
    if not os.environ.get(var):  # where the shared server of this kind is provisioned (npm test starts them)
        if os.environ.get("CI"):
            pytest.fail(f"{var} is not set: scripts/test.sh starts the servers")
        pytest.skip(f"{var} not set")
    print("\n" + run_fault(case))
