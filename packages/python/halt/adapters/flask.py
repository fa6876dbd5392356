"""halt.adapters.flask: HaltFlask(app, limiter=...) for the whole app, @limit(limiter) for one view; limits stack."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Optional, Sequence, TypeVar, Union, cast

from flask import Flask, Response, current_app, g, make_response, request

from ..core.types import Decision
from ..http.gate import Gate, HttpLimiter, check_callbacks
from ..http.headers import more_restrictive, rejection_body, rejection_status
from .wsgi import EnvironRequestView

__all__ = ["HaltFlask", "flask_user", "limit"]

F = TypeVar("F", bound=Callable[..., Any])
Limiters = Union[HttpLimiter, Sequence[HttpLimiter]]
_MEMO = "_halt_decision"


def flask_user() -> Any:
    """The user of the current request: ``g.user``, else ``g.user_id`` (set them in your auth code)."""
    user = g.get("user")
    return user if user is not None else g.get("user_id")


def _set_header(response: Response, name: str, value: str) -> None:
    response.headers[name] = value


def _remember(d: Decision, gate: Gate) -> None:
    prev = g.get(_MEMO)
    if prev is None or not d.allowed or more_restrictive(d, prev[0]):
        setattr(g, _MEMO, (d, gate))


OnLimited = Callable[[Decision], Any]


def _rejection(d: Decision, gate: Gate, on_limited: Optional[OnLimited]) -> Response:
    if on_limited is not None:
        response = make_response(on_limited(d))
    else:
        response = Response(rejection_body(d), status=rejection_status(d), mimetype="application/json")
        response.headers["Content-Type"] = "application/json; charset=utf-8"
    gate.write_headers(d, response, _set_header)
    return response


def _describe(response: Response) -> Response:
    memo = g.get(_MEMO)
    if memo is not None:
        memo[1].write_headers(memo[0], response, _set_header)
    return response


def _decide(gate: Gate, get_user: Callable[[], Any], on_limited: Optional[OnLimited]) -> Optional[Response]:
    """Check the current request; a response when it is rejected, None to go on."""
    d = gate.check(EnvironRequestView(request.environ, get_user))
    if d.reason == "exempt":
        return None
    _remember(d, gate)
    if not d.allowed:
        return _rejection(d, gate, on_limited)
    if d.delay > 0:
        time.sleep(d.delay)  # leaky bucket shaping: this worker serves the request after the delay
    return None


class HaltFlask:
    """Flask extension enforcing one limiter (or several: the first rejection wins) on every request.

    Exempt requests pass untouched; admitted ones get rate-limit headers; rejected ones get 429 (503 when the
    store is down and the limiter fails closed), ``Retry-After`` and the JSON body. Views decorated with
    :func:`limit` add their own limit; the headers describe the most restrictive.

    Example::

        app = Flask(__name__)
        HaltFlask(app, limiter=RateLimiter(policy=presets.PUBLIC_API, trusted_proxies=["10.0.0.0/8"]))

    ``get_user()`` gives the user for the ``user``/``composite`` strategies (default ``g.user``, else
    ``g.user_id``); ``on_limited(decision)`` returns your own rejection (any view return value; the rate-limit
    headers and ``Retry-After`` are added). ``init_app(app)`` is supported for application factories.
    ``quota`` (a QuotaOption, or a list) enforces a quota after the limits: 429 ``quota_exceeded`` when used up.
    """

    def __init__(
        self,
        app: Optional[Flask] = None,
        limiter: Optional[Limiters] = None,
        headers: str = "standard",
        get_user: Optional[Callable[[], Any]] = None,
        on_limited: Optional[OnLimited] = None,
        quota: Any = None,
    ) -> None:
        if limiter is None:
            limiter = []  # Gate reports it
        self.gate = Gate(limiter, headers, "HaltFlask", sync_only=True, quota=quota)
        check_callbacks("HaltFlask", get_user=get_user, on_limited=on_limited)
        self.get_user = get_user or flask_user
        self.on_limited = on_limited
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.before_request(self._before)
        app.after_request(_describe)
        app.extensions["halt"] = self

    def _before(self) -> Optional[Response]:
        return _decide(self.gate, self.get_user, self.on_limited)


def limit(
    limiter: Limiters,
    headers: str = "standard",
    get_user: Optional[Callable[[], Any]] = None,
    on_limited: Optional[OnLimited] = None,
    quota: Any = None,
) -> Callable[[F], F]:
    """Decorate a view with its own limit (on top of HaltFlask's, if any).

    Example::

        @app.post("/login")
        @limit(RateLimiter(policy=presets.AUTH_ENDPOINTS))
        def login(): ...
    """
    gate = Gate(limiter, headers, "limit", sync_only=True, quota=quota)
    check_callbacks("limit", get_user=get_user, on_limited=on_limited)
    user_of = get_user or flask_user

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def limited(*args: Any, **kwargs: Any) -> Any:
            rejected = _decide(gate, user_of, on_limited)
            if rejected is not None:
                return rejected
            return _describe(make_response(current_app.ensure_sync(view)(*args, **kwargs)))

        return cast(F, limited)

    return decorate
