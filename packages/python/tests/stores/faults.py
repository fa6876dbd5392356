"""The fault harness (a port of packages/typescript/test/stores/cas-failover.test.ts): a server of its own (started by
scripts/services.sh in a state directory of its own) is SIGKILLed in the middle of a load and restarted on the same
port, or frozen with SIGSTOP and thawed; for each ``on_store_error`` mode a limiter is under load meanwhile. No
request may raise or wait past the timeout, open, closed and fallback must answer as configured, telemetry must see
the errors, and the limiter must go back to the store by itself.

A store's fault test describes its server and store with a ``FaultCase`` and calls ``run_fault(case)``::

    FaultCase(name="PostgreSQL", service="postgres", printed="HALT_TEST_POSTGRES_URL", outage="kill",
              timeout=100, open=lambda url, lane: open_postgres(url, f"fault_{lane}", "halt:", "async"))

``open(url, lane)`` returns ``(store, close)`` (close may be a coroutine function), a sync or an asyncio store: the
load is threads calling ``check()`` for the one, asyncio tasks awaiting ``acheck()`` for the other. A sync store's
calls are bounded by its own (driver) timeout, which ``open`` must set to ``timeout``.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from halt import Policy, RateLimiter
from halt.core.failover import StoreTimeoutError

SERVICES_SH = Path(__file__).resolve().parents[4] / "scripts" / "services.sh"
MARGIN = 250  # ms past the timeout an answer may take on a busy machine (scheduling, not waiting for the store)
RETRY = 200
LIMIT = 50
KEYS = 20
OUTAGE = 1.5
#: Answers each phase must have (healthy, outage) for its assertions to mean something.
LEAST = 30
MODES = ("open", "closed", "fallback")
#: A run in which a thread of this process that only sleeps 5 ms at a time was not scheduled for this long (ms) was
#: disturbed by the machine (a stalled VM, a collection of the harness's own garbage), not by the store: a failed
#: assertion of such a run is not the store's, and it runs again, up to ATTEMPTS times. A failure in an undisturbed run,
#: or in the last one, fails at once. (The probe is a thread, not a task on the event loop: code under test that
#: blocks the loop must not pass for a disturbance.)
STALL = 100
ATTEMPTS = 3


@dataclass
class FaultCase:
    name: str
    #: The scripts/services.sh service.
    service: str
    #: The variable services.sh prints for the instance.
    printed: str
    #: "kill" (SIGKILL, then restart on the same port) or "stall" (SIGSTOP, then SIGCONT).
    outage: str
    #: The limiter's timeout (ms) for an asyncio store; a sync store's ``open`` sets its own timeout to it.
    timeout: float
    open: Callable[[str, str], Any]
    #: Concurrent request loops per mode.
    loops: int = 10
    #: For "stall": the pid file of the service, relative to its state directory.
    pid_file: Optional[str] = None
    #: How far (ms) past the timeout the store's own bound may let a check run (besides MARGIN).
    overshoot: float = 0


@dataclass
class Sample:
    key: str
    start: float
    latency: float = 0.0
    allowed: Optional[bool] = None
    reason: Optional[str] = None
    store_error: Optional[str] = None
    thrown: Optional[BaseException] = None


class Lane:
    """One limiter per mode, with what its telemetry saw."""

    def __init__(self, mode: str, store: Any, close: Any, timeout: float) -> None:
        self.mode = mode
        self.store = store
        self.close = close
        self.samples: list[Sample] = []
        self.errors: list[Any] = []
        #: How many of ``errors`` came before the outage began.
        self.healthy_errors = 0
        self.events: dict[int, Any] = {}
        lane = self

        class Seen:
            def on_check(self, event: Any) -> None:
                lane.events[id(event.decision)] = event

            def on_error(self, event: Any) -> None:
                lane.errors.append(event)

        self.limiter = RateLimiter(
            store=store,
            policy=Policy(name="api", limit=LIMIT, window=60),
            timeout=timeout,
            retry_store_after=RETRY,
            on_store_error=mode,
            telemetry=Seen(),
        )

    def record(self, sample: Sample, d: Any) -> None:
        sample.allowed, sample.reason = d.allowed, d.reason
        event = self.events.pop(id(d), None)
        sample.store_error = None if event is None else event.store_error


def run_fault(case: FaultCase) -> str:
    """Run the outage; assert; return the report (a Markdown table). A run the machine disturbed (``STALL``) and that
    failed is run again, and the report says so."""
    disturbed: list[str] = []
    for attempt in range(1, ATTEMPTS + 1):
        probe = StallProbe()
        try:
            report = _run_once(case, probe)
        except AssertionError as e:
            worst = probe.worst * 1000
            if (worst < STALL and not isinstance(e, SlowServer)) or attempt == ATTEMPTS:
                note = "; ".join([f"worst stall of this process: {worst:.0f} ms", *disturbed])
                raise AssertionError(f"{e} ({note})") from e
            first = str(e).splitlines()[0]
            why = "the server missed the timeout while healthy" if isinstance(e, SlowServer) else "this process stalled"
            disturbed.append(f"run {attempt} failed ({first}): {why} (worst stall of this process {worst:.0f} ms)")
            continue
        return "\n".join([report, f"Worst stall of this process: {probe.worst * 1000:.0f} ms", *disturbed])
    raise AssertionError("unreachable")


class SlowServer(AssertionError):
    """The healthy server missed the timeout: every store error before the outage was a timeout. A loaded 2-core machine
    does that to an emulator now and then (FerretDB on SQLite serialises writes); the run is disturbed, like one in
    which this process stalled, and runs again. Any other error before the outage fails at once."""


def _timed_out(e: BaseException) -> bool:
    """The limiter's own timeout (asyncio stores) or the driver's (sync stores: pymongo's ``PyMongoError.timeout``,
    botocore's ``ReadTimeoutError``)."""
    return (
        isinstance(e, (StoreTimeoutError, TimeoutError))
        or getattr(e, "timeout", False) is True
        or "Timeout" in type(e).__name__
    )


class StallProbe:
    """How late this process gets scheduled: a thread that sleeps 5 ms at a time and keeps the worst oversleep (s)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.running = True
        self.thread = threading.Thread(target=self._thread, daemon=True)

    def _saw(self, started: float) -> None:
        self.worst = max(self.worst, time.perf_counter() - started - 0.005)

    def _thread(self) -> None:
        while self.running:
            t = time.perf_counter()
            time.sleep(0.005)
            self._saw(t)


def _run_once(case: FaultCase, probe: StallProbe) -> str:
    state = tempfile.mkdtemp(prefix="halt-fault-py-")
    os.chmod(state, 0o755)  # PostgreSQL runs as its own OS user: its cluster then lives in here, and goes with it
    env = {**os.environ, "HALT_SERVICES_DIR": state}

    def services(*args: str) -> str:
        return subprocess.run(
            ["bash", str(SERVICES_SH), *args], env=env, capture_output=True, text=True, check=True, timeout=120
        ).stdout

    try:
        out = services("start", case.service)
        m = re.search(rf"{case.printed}='?([^'\n]+)", out)
        assert m is not None, out
        return asyncio.run(_load(case, m.group(1), services, state, probe))
    finally:
        try:
            services("stop")
        finally:
            shutil.rmtree(state, ignore_errors=True)


async def _load(case: FaultCase, url: str, services: Callable[..., str], state: str, probe: StallProbe) -> str:
    lanes: list[Lane] = []
    for mode in MODES:
        store, close = case.open(url, mode)
        lanes.append(Lane(mode, store, close, case.timeout))
    sync = lanes[0].store.synchronous
    # Connections (as many as the load keeps in flight) and tables are set up before the load.
    for lane in lanes:
        await lane.limiter.acheck("warm-up")
        await asyncio.gather(*(lane.limiter.acheck(f"warm-up-{i}") for i in range(case.loops)))
    running = [True]
    probe.thread.start()
    t_start = time.perf_counter()

    def one(lane: Lane, loop: int, i: int) -> Sample:
        return Sample(key=f"user:{(loop * 7 + i) % KEYS}", start=time.perf_counter())

    def thread_loop(lane: Lane, loop: int) -> None:
        i = 0
        while running[0]:
            s = one(lane, loop, i)
            try:
                lane.record(s, lane.limiter.check(s.key))
            except Exception as e:
                s.thrown = e
            s.latency = time.perf_counter() - s.start
            lane.samples.append(s)
            time.sleep(0.002)
            i += 1

    async def task_loop(lane: Lane, loop: int) -> None:
        i = 0
        while running[0]:
            s = one(lane, loop, i)
            try:
                lane.record(s, await lane.limiter.acheck(s.key))
            except Exception as e:
                s.thrown = e
            s.latency = time.perf_counter() - s.start
            lane.samples.append(s)
            await asyncio.sleep(0.002)
            i += 1

    threads = [threading.Thread(target=thread_loop, args=(lane, n)) for lane in lanes for n in range(case.loops)]
    tasks = []
    if sync:
        for t in threads:
            t.start()
    else:
        tasks = [asyncio.ensure_future(task_loop(lane, n)) for lane in lanes for n in range(case.loops)]

    loop = asyncio.get_running_loop()

    async def blocking(fn: Callable[..., Any], *args: Any) -> Any:
        return await loop.run_in_executor(None, fn, *args)

    stopped: list[int] = []
    try:
        # Healthy first: at least 1 s, and until every lane has answered from the store more than LEAST times (a slow
        # emulator on a loaded machine takes longer), for at most 15 s (then the assertion below says how many).
        healthy = time.perf_counter() + 15
        await asyncio.sleep(1.0)
        while any(len(lane.samples) <= LEAST for lane in lanes) and time.perf_counter() < healthy:
            await asyncio.sleep(0.05)
        t_down = time.perf_counter()
        for lane in lanes:
            lane.healthy_errors = len(lane.errors)
        if case.outage == "kill":
            await blocking(services, "kill", case.service)
            t_dead = time.perf_counter()
            await asyncio.sleep(OUTAGE)
            t_up = time.perf_counter()
            await blocking(services, "restart", case.service)
        else:
            assert case.pid_file is not None
            # The server's process (the first line of its pid file), stopped first so that it forks no more, then
            # its children (PostgreSQL's backends).
            pid = int((Path(state) / case.pid_file).read_text().split()[0])
            _signal([pid], signal.SIGSTOP, stopped)
            children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
            _signal(list(map(int, children)), signal.SIGSTOP, stopped)
            t_dead = time.perf_counter()
            await asyncio.sleep(OUTAGE)
            t_up = time.perf_counter()
            _signal(stopped, signal.SIGCONT, [])
            stopped.clear()
        deadline = time.perf_counter() + 15
        while any(lane.limiter.store_down for lane in lanes) and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(4)

        def settled() -> bool:
            """Every lane has answered from the store 60 times since its last failure."""
            for lane in lanes:
                last = _last_failure(lane.samples)
                if sum(1 for s in lane.samples[-61:] if s.start > last) <= 60:
                    return False
            return True

        patience = time.perf_counter() + 10
        while not settled() and time.perf_counter() < patience:
            await asyncio.sleep(0.1)
        t_settled = time.perf_counter()
    finally:
        # Whatever failed above: thaw the server, stop the load (non-daemon threads would keep pytest alive).
        _signal(stopped, signal.SIGCONT, [])
        running[0] = False
        probe.running = False
        if sync:
            for t in threads:
                await blocking(t.join)
        else:
            await asyncio.gather(*tasks)
        for lane in lanes:
            done = lane.close()
            if inspect.isawaitable(done):
                await done

    timeout = case.timeout / 1000
    report = [
        f"{case.name} ({'sync, threads' if sync else 'asyncio'}) "
        f"{'SIGKILLed, restarted' if case.outage == 'kill' else 'frozen (SIGSTOP), thawed'} after {OUTAGE * 1000:.0f} "
        f"ms; timeout {case.timeout:.0f} ms, retry_store_after {RETRY} ms, {case.loops} loops per mode",
        "| on_store_error | requests served | before the outage | answered by the failure policy | store errors "
        "(telemetry) | answering for good after | slowest answer |",
        "|---|---|---|---|---|---|---|",
    ]
    for lane in lanes:
        mode, samples = lane.mode, lane.samples
        thrown = [repr(s.thrown) for s in samples if s.thrown is not None]
        assert thrown == [], f"{mode}: {len(thrown)} checks raised, first {thrown[:3]}"
        slowest = max(s.latency for s in samples)
        assert slowest < timeout + (MARGIN + case.overshoot) / 1000, f"{mode}: slowest answer {slowest * 1000:.0f} ms"
        # Healthy: the store decides.
        before = [s for s in samples if s.start + s.latency < t_down]
        assert len(before) > LEAST, f"{mode}: only {len(before)} answers before the outage"
        early = [s for s in before if s.store_error is not None]
        if early:
            errors = [e.error for e in lane.errors[: lane.healthy_errors]]
            said = (
                f"{mode}: {len(early)} answers by the failure policy before the outage, {len(errors)} store errors, "
                f"first {errors[:1]!r} {(early[0].start - t_start) * 1000:.0f} ms into the load"
            )
            if errors and all(_timed_out(e) for e in errors):
                raise SlowServer(said)
            raise AssertionError(said)
        # Outage: the failure policy decides.
        during = [s for s in samples if s.start > t_dead + timeout + 0.05 and s.start + s.latency < t_up]
        assert len(during) > LEAST, f"{mode}: only {len(during)} answers during the outage"
        seen = {s.store_error for s in during}
        assert seen == {mode}, f"{mode}: {seen} during the outage"
        if mode == "open":
            assert all(s.allowed and s.reason == "store_error" for s in during)
        if mode == "closed":
            assert all(not s.allowed and s.reason == "store_error" for s in during)
        if mode == "fallback":
            fallback = [s for s in samples if s.store_error == "fallback"]
            admitted: dict[str, int] = {}
            for s in fallback:
                if s.allowed:
                    admitted[s.key] = admitted.get(s.key, 0) + 1
            span = (max(s.start for s in fallback) - min(s.start for s in fallback)) * 1000
            assert max(admitted.values()) <= LIMIT + math.ceil(span * LIMIT / 60_000)
            assert all(s.reason in (None, "limit") for s in fallback)
        # Recovery: by itself, soon, and for good: judged on the checks answered before the load was told to stop (one
        # still in flight then, an emulator's slow answer, must not hide the 60 answers that ended the wait).
        judged = [s for s in samples if s.start + s.latency <= t_settled]
        last = _last_failure(judged)
        assert any(s.start > t_up and s.store_error is None for s in samples), f"{mode}: no decision from the store"
        recovery = max(0.0, last - t_up)
        assert recovery < 10, f"{mode}: {recovery:.1f} s from the restart until the store answers for good"
        later = [s for s in judged if s.start > last]
        assert len(later) > LEAST, f"{mode}: only {len(later)} answers after the recovery"
        # Telemetry saw the errors, each with the action taken.
        assert lane.errors, f"{mode}: telemetry saw no store error"
        odd = [(e.action, e.operation) for e in lane.errors if e.action != mode or e.operation != "check"]
        assert odd == [], f"{mode}: store errors reported as {odd[:3]}"
        failed = sum(1 for s in samples if s.store_error is not None)
        report.append(
            f"| {mode} | {len(samples)} | {len(before)} | {failed} | {len(lane.errors)} | {recovery * 1000:.0f} ms "
            f"| {slowest * 1000:.1f} ms |"
        )
    return "\n".join(report)


def _last_failure(samples: list[Sample]) -> float:
    """When the last of ``samples`` that the failure policy answered ended (0: none did)."""
    return max([0.0] + [s.start + s.latency for s in samples if s.store_error is not None])


def _signal(pids: list[int], sig: int, done: list[int]) -> None:
    """Send ``sig`` to each of ``pids`` that still runs (a backend may have exited meanwhile); note those reached."""
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            continue
        done.append(p)


__all__ = ["FaultCase", "run_fault"]
