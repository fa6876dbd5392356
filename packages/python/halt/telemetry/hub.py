"""TelemetryHub: the one place a limiter's events reach its telemetry sinks. Validates the sinks once; a hook that
raises, or a coroutine hook that fails, never reaches the request."""

from __future__ import annotations

import asyncio
import inspect
import random
import re
import threading
import weakref
from typing import Any, Awaitable, Callable, Mapping, Optional

from halt.core.errors import HaltConfigError
from halt.http.warnings import WarningCode

from .labels import message_of
from .types import DecisionEvent, StoreErrorEvent, Telemetry, TelemetryOption

__all__ = ["HOOKS", "TelemetryHub", "request_id_of"]

#: The hooks a sink may have, in the order of ``Telemetry``.
HOOKS: tuple[str, ...] = ("on_check", "on_allowed", "on_blocked", "on_near_limit", "on_error")
#: Hook names of earlier versions, and what replaced them.
_RENAMED = {"on_decision": "on_check", "on_store_error": "on_error"}
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")

#: (hook, its name) pairs, in the order the sinks were given.
_Hooks = tuple[tuple[Callable[[Any], Any], str], ...]


#: Ids made up for requests without a usable ``X-Request-Id``: every event of one request carries the same one.
_made_up: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def request_id_of(req: Any) -> str:
    """The request's ``X-Request-Id`` when it is 1-64 printable ASCII characters without spaces, else a random id of
    8 hex digits made up for it (the same one for every limiter, quota and event of that request view; a view that
    cannot be weakly referenced gets a new one each time)."""
    try:
        rid = req.header("x-request-id")
    except Exception:
        rid = None
    if isinstance(rid, str) and _REQUEST_ID.fullmatch(rid) is not None:
        return rid
    try:
        made = _made_up.get(req)
    except TypeError:  # not weakly referenceable, or unhashable
        return f"{random.getrandbits(32):08x}"
    if made is None:
        made = f"{random.getrandbits(32):08x}"
        _made_up[req] = made
    return made


class TelemetryHub:
    """Dispatches a limiter's (or a quota manager's) events to one or several sinks, in order.

    Every call is guarded: a hook that raises is reported once through ``warn(code, message)`` and the next hook
    still runs. A hook that returns an awaitable (an ``async def`` hook) is not awaited: it runs as a task on the
    running event loop, or, outside one, on a background loop of its own; its failure is reported the same way.

    Example::

        hub = TelemetryHub([LoggingTelemetry(), MetricsTelemetry()], warnings.warn)
        hub.decision(DecisionEvent("user:42", 1, decision))
    """

    __slots__ = ("_allowed", "_blocked", "_checks", "_errors", "_near", "_tasks", "_warn")

    def __init__(self, option: TelemetryOption, warn: Callable[[str, str], None]) -> None:
        several = isinstance(option, (list, tuple))
        sinks: list[object] = list(option) if several else [option]  # type: ignore[arg-type]
        lists: dict[str, list[tuple[Callable[[Any], Any], str]]] = {name: [] for name in HOOKS}
        for i, sink in enumerate(sinks):
            where = f"telemetry[{i}]" if several else "telemetry"
            for name, fn in _hooks_of(sink, where):
                lists[name].append((fn, name))
        self._checks: _Hooks = tuple(lists["on_check"])
        self._allowed: _Hooks = tuple(lists["on_allowed"])
        self._blocked: _Hooks = tuple(lists["on_blocked"])
        self._near: _Hooks = tuple(lists["on_near_limit"])
        self._errors: _Hooks = tuple(lists["on_error"])
        self._warn = warn
        #: Tasks of coroutine hooks still running (the loop keeps only weak references to tasks).
        self._tasks: set[Any] = set()

    @property
    def has_near_limit(self) -> bool:
        """Whether any sink listens to near-limit signals (the limiter skips computing them otherwise)."""
        return len(self._near) > 0

    def decision(self, event: DecisionEvent) -> None:
        """``on_check``, then ``on_allowed`` or ``on_blocked``."""
        if self._checks:
            self._run(self._checks, event)
        hooks = self._allowed if event.decision.allowed else self._blocked
        if hooks:
            self._run(hooks, event)

    def near_limit(self, event: DecisionEvent) -> None:
        self._run(self._near, event)

    def error(self, event: StoreErrorEvent) -> None:
        self._run(self._errors, event)

    def _run(self, hooks: _Hooks, event: object) -> None:
        for fn, name in hooks:
            try:
                r = fn(event)
            except Exception as e:
                self._failed(name, e)
                continue
            if r is not None and inspect.isawaitable(r):
                self._schedule(name, r)

    def _schedule(self, name: str, awaitable: Awaitable[Any]) -> None:
        try:
            loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        try:
            if loop is not None:
                task: Any = asyncio.ensure_future(awaitable)
            else:
                task = asyncio.run_coroutine_threadsafe(_awaited(awaitable), _background_loop())
        except Exception as e:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never scheduled: no "never awaited" warning on top of ours
            self._failed(name, e)
            return
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(name, t))

    def _done(self, name: str, task: Any) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        e = task.exception()
        if e is not None:
            self._failed(name, e)

    def _failed(self, name: str, e: BaseException) -> None:
        self._warn(
            WarningCode.TELEMETRY_HOOK_FAILED,
            f"the telemetry hook {name} failed ({message_of(e)[:200]}); requests are served as if it had succeeded. "
            "This is reported once.",
        )


def _hooks_of(sink: object, where: str) -> list[tuple[str, Callable[[Any], Any]]]:
    """The hooks of one sink (an object with hook methods, or a mapping of hook names), validated."""
    if isinstance(sink, type):
        raise _invalid(f"{where} is the class {sink.__name__}; pass an instance: {sink.__name__}().")
    if sink is None or isinstance(sink, (str, bytes, int, float, bool)):
        raise _invalid(
            f"{where} must be an object with hooks such as on_check or on_blocked (or an exporter like "
            f"LoggingTelemetry()), got {sink!r}."
        )
    if isinstance(sink, Mapping):
        get: Callable[[str], Any] = sink.get
    else:

        def get(name: str) -> Any:
            return getattr(sink, name, None)

    for old, now in _RENAMED.items():
        if get(old) is not None:
            raise _invalid(f"{where}.{old} was renamed: use {now}.")
    hooks: list[tuple[str, Callable[[Any], Any]]] = []
    for name in HOOKS:
        fn = get(name)
        if fn is None or getattr(fn, "__func__", None) is getattr(Telemetry, name):
            continue  # absent, or the base class's no-op
        if not callable(fn):
            raise _invalid(f"{where}.{name} must be a function (event) -> None, got {type(fn).__name__}.")
        hooks.append((name, fn))
    if not hooks:
        raise _invalid(f"{where} has none of the hooks {', '.join(HOOKS)}.")
    return hooks


def _invalid(message: str) -> HaltConfigError:
    return HaltConfigError("HALT_INVALID_TELEMETRY", f"RateLimiter: {message}")


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


_loop: Optional[asyncio.AbstractEventLoop] = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """The event loop (in a daemon thread, started on first use) that runs coroutine hooks called outside any loop:
    a synchronous check, or a synchronous store's call in a worker thread."""
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="halt-telemetry", daemon=True).start()
            _loop = loop
        return _loop
