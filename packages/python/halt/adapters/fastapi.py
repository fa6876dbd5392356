"""halt.adapters.fastapi: HaltMiddleware (a pure ASGI middleware, app-wide) and create_limiter_dependency (per route).

Works with FastAPI, Starlette and any ASGI app. Both can be used together: the limits stack, the first rejection
answers, and the response headers describe the most restrictive decision.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Coroutine, MutableMapping, Optional, Sequence, Union

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..core.types import Decision
from ..http.gate import DECISION_KEY, Gate, HttpLimiter, check_callbacks
from ..http.headers import more_restrictive, rejection_body, rejection_status
from ..http.rules import default_user_id

__all__ = [
    "HALT_EXCEPTION_HANDLERS",
    "AsgiRequestView",
    "HaltMiddleware",
    "RateLimited",
    "create_limiter_dependency",
    "rate_limited_handler",
]

#: Set by HaltMiddleware on every HTTP scope it sees, so a route dependency knows a middleware writes the headers.
_MIDDLEWARE_KEY = "halt.middleware"
#: A route dependency's rejection, for the middleware to answer with the exact Halt response.
_REJECTED_KEY = "halt.rejected"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Limiters = Union[HttpLimiter, Sequence[HttpLimiter]]


def asgi_user(scope: Scope) -> Any:
    """The user of a request: ``request.user`` (``scope["user"]``) when it has an id, else ``request.state.user_id``."""
    user = scope.get("user")
    if user is not None and default_user_id(user) is not None:
        return user
    state = scope.get("state")
    if isinstance(state, MutableMapping) and state.get("user_id") is not None:
        return state["user_id"]
    return user


class AsgiRequestView:
    """A RequestView over an ASGI HTTP scope. The client is the socket's peer (``scope["client"]``);
    the path is the raw, undecoded one the server received (exemptions match canonical paths only)."""

    # __weakref__: telemetry keeps the id it makes up for a request without X-Request-Id per view.
    __slots__ = ("__weakref__", "_get_ip", "_get_user", "scope")

    def __init__(
        self,
        scope: Scope,
        get_user: Optional[Callable[[Scope], Any]] = None,
        get_ip: Optional[Callable[[Scope], Optional[str]]] = None,
    ) -> None:
        self.scope = scope
        self._get_user = get_user
        self._get_ip = get_ip

    @property
    def ip(self) -> Optional[str]:
        if self._get_ip is not None:
            return self._get_ip(self.scope)
        client = self.scope.get("client")
        return client[0] if client else None

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    @property
    def path(self) -> str:
        raw = self.scope.get("raw_path")
        if isinstance(raw, (bytes, bytearray)):
            return raw.decode("latin-1")
        return str(self.scope.get("path", "/"))

    def header(self, name: str) -> Optional[str]:
        key = name.encode("latin-1")
        found: Optional[str] = None
        for k, v in self.scope.get("headers", ()):
            if k == key:
                text = v.decode("latin-1")
                found = text if found is None else f"{found}, {text}"
        return found

    @property
    def user(self) -> Any:
        return (self._get_user or asgi_user)(self.scope)


def _remember(scope: Scope, d: Decision, gate: Gate) -> None:
    """Record ``d`` on the request if the response should now describe it (the most restrictive so far)."""
    if d.reason == "exempt":
        return
    prev = scope.get(DECISION_KEY)
    if prev is None or not d.allowed or more_restrictive(d, prev[0]):
        scope[DECISION_KEY] = (d, gate)


def _headers_of(d: Decision, gate: Gate) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    gate.write_headers(d, out, _append_header)
    return out


_NAMES: dict[str, bytes] = {}


def _append_header(target: list[tuple[bytes, bytes]], name: str, value: str) -> None:
    raw = _NAMES.get(name)
    if raw is None:
        raw = _NAMES[name] = name.lower().encode("latin-1")  # a handful of names: RateLimit-*, Retry-After
    target.append((raw, value.encode("latin-1")))


async def _sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


class HaltMiddleware:
    """ASGI middleware enforcing one limiter (or several: the first rejection wins) on every HTTP request.

    Exempt requests pass untouched; admitted ones get rate-limit headers; rejected ones get 429 (503 when the
    store is down and the limiter fails closed), ``Retry-After`` and the JSON body. The limiter is awaited
    (``acheck``), so an async store never blocks the event loop.

    Example::

        app = FastAPI()
        limiter = RateLimiter(policy=presets.PUBLIC_API, trusted_proxies=["10.0.0.0/8"])
        app.add_middleware(HaltMiddleware, limiter=limiter)

    ``get_user(scope)`` gives the user for the ``user``/``composite`` strategies (default: ``request.user``
    when it has an id, else ``request.state.user_id``); ``get_ip(scope)`` overrides the peer address;
    ``on_limited(scope, decision)`` returns your own rejection as an ASGI app (headers are added for you).
    ``quota`` (a QuotaOption, or a list) enforces a quota after the limits: 429 ``quota_exceeded`` when used up.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: Limiters,
        headers: str = "standard",
        get_user: Optional[Callable[[Scope], Any]] = None,
        get_ip: Optional[Callable[[Scope], Optional[str]]] = None,
        on_limited: Optional[Callable[[Scope, Decision], ASGIApp]] = None,
        quota: Any = None,
    ) -> None:
        self.app = app
        self.gate = Gate(limiter, headers, "HaltMiddleware", quota=quota)
        check_callbacks("HaltMiddleware", get_user=get_user, get_ip=get_ip, on_limited=on_limited)
        self.get_user = get_user
        self.get_ip = get_ip
        self.on_limited = on_limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[_MIDDLEWARE_KEY] = True
        d = await self.gate.acheck(AsgiRequestView(scope, self.get_user, self.get_ip))
        if d.reason != "exempt":
            _remember(scope, d, self.gate)
            if not d.allowed:
                await self._reject(scope, receive, send, d)
                return
            if d.delay > 0:
                await _sleep(d.delay)
        replaced = False

        async def send_with_headers(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the body of a response we answered ourselves
            if message["type"] == "http.response.start":
                rejected = scope.get(_REJECTED_KEY)
                if isinstance(rejected, RateLimited) and message.get("status") == rejected.status_code:
                    # A route limit rejected: send Halt's own 429 instead of the framework's rendering of it.
                    replaced = True
                    await rejected.response()(scope, receive, send)
                    return
                memo = scope.get(DECISION_KEY)
                if memo is not None:
                    ours = _headers_of(memo[0], memo[1])
                    taken = {k for k, _ in ours}
                    # ASGI header names are lowercase; the limiter's headers replace any the app set.
                    headers = [h for h in message.get("headers", ()) if h[0] not in taken]
                    headers.extend(ours)
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, d: Decision) -> None:
        headers = _headers_of(d, self.gate)
        if self.on_limited is not None:
            custom = self.on_limited(scope, d)

            async def send_limited(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), *headers]}
                await send(message)

            await custom(scope, receive, send_limited)
            return
        body = rejection_body(d).encode()
        headers.append((b"content-type", b"application/json; charset=utf-8"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": rejection_status(d), "headers": headers})
        await send({"type": "http.response.body", "body": body})


class RateLimited(HTTPException):
    """Raised by a route dependency from :func:`create_limiter_dependency` when the request is over a limit.

    An ``HTTPException`` with status 429 (503 when the store is down and the limiter fails closed), the
    rate-limit headers and ``Retry-After``. With :class:`HaltMiddleware` installed, or with
    ``app.add_exception_handler(RateLimited, rate_limited_handler)``, the body is Halt's JSON body too;
    otherwise the framework renders it (FastAPI: ``{"detail": ...}``).
    """

    def __init__(self, decision: Decision, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(
            rejection_status(decision),
            detail="Too many requests. Please try again later.",
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in headers},
        )
        self.decision = decision

    def response(self) -> Response:
        """Halt's rejection: the status, the headers and the JSON body of every Halt SDK."""
        return Response(
            rejection_body(self.decision),
            status_code=self.status_code,
            headers=self.headers,
            media_type="application/json; charset=utf-8",
        )


async def rate_limited_handler(request: Request, exc: Exception) -> Response:
    """The handler for :class:`RateLimited`: ``app.add_exception_handler(RateLimited, rate_limited_handler)``."""
    if not isinstance(exc, RateLimited):  # pragma: no cover - registered for RateLimited only
        raise exc
    return exc.response()


#: ``FastAPI(exception_handlers=HALT_EXCEPTION_HANDLERS)``: route-limit rejections with Halt's JSON body.
HALT_EXCEPTION_HANDLERS: dict[Union[int, type[Exception]], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    RateLimited: rate_limited_handler
}


def create_limiter_dependency(
    limiter: Limiters,
    headers: str = "standard",
    get_user: Optional[Callable[[Scope], Any]] = None,
    get_ip: Optional[Callable[[Scope], Optional[str]]] = None,
    quota: Any = None,
) -> Callable[[Request, Response], Awaitable[None]]:
    """A FastAPI dependency enforcing ``limiter`` (or several) on the routes that depend on it.

    Stacks with :class:`HaltMiddleware`: both apply, and the response headers describe the stricter decision.
    Over the limit it raises :class:`RateLimited` (answered by the middleware or by ``rate_limited_handler``).

    Example::

        login_limit = create_limiter_dependency(RateLimiter(policy=presets.AUTH_ENDPOINTS))

        @app.post("/login", dependencies=[Depends(login_limit)])
        async def login(): ...
    """
    gate = Gate(limiter, headers, "create_limiter_dependency", quota=quota)
    check_callbacks("create_limiter_dependency", get_user=get_user, get_ip=get_ip)

    async def halt_limit(request: Request, response: Response) -> None:
        scope = request.scope
        d = await gate.acheck(AsgiRequestView(scope, get_user, get_ip))
        if d.reason == "exempt":
            return
        behind_middleware = scope.get(_MIDDLEWARE_KEY) is True
        _remember(scope, d, gate)
        memo_d, memo_gate = scope[DECISION_KEY]
        if not d.allowed:
            exc = RateLimited(d, _headers_of(d, gate))
            scope[_REJECTED_KEY] = exc
            raise exc
        if d.delay > 0:
            await _sleep(d.delay)
        if not behind_middleware:
            # No middleware will write the headers at response start: put them on the route's response.
            for k, v in _headers_of(memo_d, memo_gate):
                response.headers[k.decode("latin-1")] = v.decode("latin-1")

    return halt_limit
