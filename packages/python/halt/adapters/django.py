"""halt.adapters.django: create_halt_middleware(limiter), HaltMiddleware (from settings.HALT), @limit(limiter).

The middleware is sync and async capable: under ASGI it awaits the limiter (``acheck``), so an async store never
blocks the event loop. A view's own ``@limit`` stacks with the middleware's; the headers describe the stricter.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, Callable, Optional, Sequence, TypeVar, Union, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from ..core.errors import HaltConfigError
from ..core.types import Decision
from ..http.gate import Gate, HttpLimiter, check_callbacks
from ..http.headers import more_restrictive, rejection_body, rejection_status
from .wsgi import EnvironRequestView

__all__ = ["HaltMiddleware", "create_halt_middleware", "django_user", "limit"]

F = TypeVar("F", bound=Callable[..., Any])
Limiters = Union[HttpLimiter, Sequence[HttpLimiter]]
GetUser = Callable[[HttpRequest], Any]
_MEMO = "_halt_decision"
#: Adapter options in settings.HALT; every other key is a RateLimiter option.
_ADAPTER_KEYS = ("limiter", "headers", "get_user", "on_limited", "quota")


def django_user(request: HttpRequest) -> Any:
    """``request.user`` (set by AuthenticationMiddleware; an anonymous user has no id, so no identity)."""
    return getattr(request, "user", None)


def _view(request: HttpRequest, get_user: GetUser, user: Any = None, resolved: bool = False) -> EnvironRequestView:
    if resolved:
        return EnvironRequestView(request.META, lambda: user)
    return EnvironRequestView(request.META, lambda: get_user(request))


def _set_header(response: HttpResponse, name: str, value: str) -> None:
    response[name] = value


def _remember(request: HttpRequest, d: Decision, gate: Gate) -> None:
    prev = getattr(request, _MEMO, None)
    if prev is None or not d.allowed or more_restrictive(d, prev[0]):
        setattr(request, _MEMO, (d, gate))


OnLimited = Callable[[HttpRequest, Decision], HttpResponse]


def _rejection(request: HttpRequest, d: Decision, gate: Gate, on_limited: Optional[OnLimited]) -> HttpResponse:
    if on_limited is not None:
        response = on_limited(request, d)
    else:
        response = HttpResponse(
            rejection_body(d), status=rejection_status(d), content_type="application/json; charset=utf-8"
        )
    gate.write_headers(d, response, _set_header)
    return response


def _describe(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    memo = getattr(request, _MEMO, None)
    if memo is not None:
        memo[1].write_headers(memo[0], response, _set_header)
    return response


def _after_check(
    request: HttpRequest, d: Decision, gate: Gate, on_limited: Optional[OnLimited]
) -> Optional[HttpResponse]:
    if d.reason == "exempt":
        return None
    _remember(request, d, gate)
    return None if d.allowed else _rejection(request, d, gate, on_limited)


def _needs_user(gate: Gate) -> bool:
    """Whether a limiter keys by user (then an async request resolves ``request.auser()`` first)."""
    for limiter in gate.limiters:
        policy = getattr(limiter, "policy", None)
        if getattr(policy, "key_strategy", None) in ("user", "composite"):
            return True
    return False


class _Checker:
    """One gate applied to Django requests, sync or async."""

    def __init__(self, gate: Gate, get_user: Optional[GetUser], on_limited: Optional[OnLimited] = None) -> None:
        check_callbacks("halt.adapters.django", get_user=get_user, on_limited=on_limited)
        self.gate = gate
        self.on_limited = on_limited
        self.get_user = get_user or django_user
        self.prefetch = get_user is None and _needs_user(gate)

    def check(self, request: HttpRequest) -> Optional[HttpResponse]:
        d = self.gate.check(_view(request, self.get_user))
        rejected = _after_check(request, d, self.gate, self.on_limited)
        if rejected is None and d.allowed and d.delay > 0:
            time.sleep(d.delay)  # leaky bucket shaping: this worker serves the request after the delay
        return rejected

    async def acheck(self, request: HttpRequest) -> Optional[HttpResponse]:
        if self.prefetch and hasattr(request, "auser"):
            # request.user is a lazy database read, not allowed in async code: resolve it the async way.
            view = _view(request, self.get_user, await request.auser(), resolved=True)
        else:
            view = _view(request, self.get_user)
        d = await self.gate.acheck(view)
        rejected = _after_check(request, d, self.gate, self.on_limited)
        if rejected is None and d.allowed and d.delay > 0:
            await asyncio.sleep(d.delay)
        return rejected


class _HaltMiddlewareBase:
    sync_capable = True
    async_capable = True
    _checker: _Checker

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        else:
            self._checker.gate.require_sync(type(self).__name__)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        rejected = self._checker.check(request)
        if rejected is not None:
            return rejected
        return _describe(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        rejected = await self._checker.acheck(request)
        if rejected is not None:
            return rejected
        response = await self.get_response(request)
        return _describe(request, response)


def create_halt_middleware(
    limiter: Limiters,
    headers: str = "standard",
    get_user: Optional[GetUser] = None,
    on_limited: Optional[OnLimited] = None,
    quota: Any = None,
) -> type[_HaltMiddlewareBase]:
    """A Django middleware class enforcing ``limiter`` (or several: the first rejection wins) on every request.

    Exempt requests pass untouched; admitted ones get rate-limit headers; rejected ones get 429 (503 when the
    store is down and the limiter fails closed), ``Retry-After`` and the JSON body, or ``on_limited(request,
    decision)``'s response (the rate-limit headers and ``Retry-After`` are added).

    Example (``myproject/middleware.py``, then ``MIDDLEWARE = [..., "myproject.middleware.RateLimit"]`` after
    AuthenticationMiddleware when keying by user)::

        RateLimit = create_halt_middleware(RateLimiter(policy=presets.PUBLIC_API, trusted_proxies=["10.0.0.0/8"]))
    """
    checker = _Checker(Gate(limiter, headers, "create_halt_middleware", quota=quota), get_user, on_limited)
    return type("HaltDjangoMiddleware", (_HaltMiddlewareBase,), {"_checker": checker})


def limiter_from_settings(config: Any) -> tuple[Limiters, str, Optional[GetUser], Optional[OnLimited]]:
    """The limiter and adapter options of ``settings.HALT``: ``{"limiter": ...}`` or RateLimiter options."""
    if not isinstance(config, dict):
        raise HaltConfigError(
            "HALT_INVALID_OPTIONS",
            "settings.HALT must be a dict, like {'policy': presets.PUBLIC_API, 'trusted_proxies': ['10.0.0.0/8']} "
            f"or {{'limiter': RateLimiter(...)}}, got {type(config).__name__}.",
        )
    headers = config.get("headers", "standard")
    get_user = config.get("get_user")
    on_limited = config.get("on_limited")
    if "limiter" in config:
        extra = sorted(k for k in config if k not in _ADAPTER_KEYS)
        if extra:
            raise HaltConfigError(
                "HALT_INVALID_OPTIONS",
                f"settings.HALT: with 'limiter' the limiter options belong to it, not to HALT (found {extra}). "
                "Fix: RateLimiter(policy=..., trusted_proxies=...) inside 'limiter', or drop 'limiter'.",
            )
        return config["limiter"], headers, get_user, on_limited
    from ..core.limiter import RateLimiter

    options = {k: v for k, v in config.items() if k not in _ADAPTER_KEYS}
    return RateLimiter(**options), headers, get_user, on_limited


class HaltMiddleware(_HaltMiddlewareBase):
    """Halt configured from ``settings.HALT`` (read once, at startup: a mistake raises HaltConfigError there).

    Example (``settings.py``)::

        HALT = {"policy": presets.PUBLIC_API, "trusted_proxies": ["10.0.0.0/8"], "headers": "standard"}
        MIDDLEWARE = [..., "halt.adapters.django.HaltMiddleware"]

    ``HALT`` holds RateLimiter options (``policy``, ``store``, ``trusted_proxies``, ...) or a ready
    ``"limiter"``, plus the adapter's ``headers``, ``get_user``, ``on_limited`` and ``quota`` (a QuotaOption).
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        from django.conf import settings

        config: Any = getattr(settings, "HALT", None)
        limiter, headers, get_user, on_limited = limiter_from_settings(config)
        gate = Gate(limiter, headers, "HaltMiddleware", quota=config.get("quota"))  # a dict: checked above
        self._checker = _Checker(gate, get_user, on_limited)
        super().__init__(get_response)


def limit(
    limiter: Limiters,
    headers: str = "standard",
    get_user: Optional[GetUser] = None,
    on_limited: Optional[OnLimited] = None,
    quota: Any = None,
) -> Callable[[F], F]:
    """Decorate a Django view (sync or async) with its own limit, on top of the middleware's if any.

    Example::

        @limit(RateLimiter(policy=presets.AUTH_ENDPOINTS))
        def login(request): ...
    """
    checker = _Checker(Gate(limiter, headers, "limit", quota=quota), get_user, on_limited)

    def decorate(view: F) -> F:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def alimited(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                rejected = await checker.acheck(request)
                if rejected is not None:
                    return rejected
                return _describe(request, await view(request, *args, **kwargs))

            return cast(F, alimited)

        checker.gate.require_sync("limit")  # a sync view

        @functools.wraps(view)
        def limited(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            rejected = checker.check(request)
            if rejected is not None:
                return rejected
            return _describe(request, view(request, *args, **kwargs))

        return cast(F, limited)

    return decorate
