"""RequestView: the framework-neutral view of an HTTP request that the limiter reads, and helpers to build one."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

from typing_extensions import Protocol, runtime_checkable

__all__ = ["BasicRequestView", "RequestView", "path_of"]


@runtime_checkable
class RequestView(Protocol):
    """What Halt reads from a request.

    Adapters build one per request (cheaply: every field may be a property); build your own to call
    ``limiter.check(view)`` from any server. ``ip`` is the TCP peer (the socket), not a header: forwarding
    headers are applied on top of it, and only when this peer is a trusted proxy. ``path`` is the path as the
    router sees it (a full URL or a path with a query is accepted: only the path part is read). ``header`` takes
    a lowercase name and joins several values with ``", "``. ``user`` is the authenticated user, for the
    ``user`` and ``composite`` key strategies.

    Example::

        limiter.check(BasicRequestView(ip="203.0.113.7", path="/api/items", headers={"x-api-key": key}))
    """

    @property
    def ip(self) -> Optional[str]: ...

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    def header(self, name: str) -> Optional[str]: ...

    @property
    def user(self) -> Any: ...


HeaderValues = Union[str, Sequence[str]]


class BasicRequestView:
    """A :class:`RequestView` over plain data; a list header value stands for several header lines.

    >>> BasicRequestView(ip="203.0.113.7", path="/api", headers={"X-API-Key": "k"}).header("x-api-key")
    'k'
    """

    # __weakref__: telemetry keeps the id it makes up for a request without X-Request-Id per view.
    __slots__ = ("__weakref__", "_headers", "ip", "method", "path", "user")

    def __init__(
        self,
        ip: Optional[str] = None,
        method: str = "GET",
        path: str = "/",
        headers: Optional[Mapping[str, HeaderValues]] = None,
        user: Any = None,
    ) -> None:
        self.ip = ip
        self.method = method
        self.path = path
        self.user = user
        self._headers: dict[str, str] = {}
        for name, value in (headers or {}).items():
            self._headers[name.lower()] = value if isinstance(value, str) else ", ".join(value)

    def header(self, name: str) -> Optional[str]:
        return self._headers.get(name)

    def __repr__(self) -> str:
        return f"BasicRequestView(ip={self.ip!r}, method={self.method!r}, path={self.path!r})"


def path_of(url: str) -> str:
    """The path of a request target, without decoding or normalising (see docs/http.md, exemptions).

    >>> path_of("/health?probe=1")
    '/health'
    >>> path_of("https://h/a/b?x")
    '/a/b'
    """
    if not isinstance(url, str) or len(url) == 0:
        return "/"
    start = 0
    if url[0] == "/":
        if "?" not in url and "#" not in url:
            return url  # the common case: already a path
    else:
        scheme = url.find("://")
        if scheme < 0:
            return url
        start = url.find("/", scheme + 3)
        if start < 0:
            return "/"
    end = len(url)
    q = url.find("?", start)
    if q >= 0:
        end = q
    h = url.find("#", start)
    if 0 <= h < end:
        end = h
    return url if start == 0 and end == len(url) else url[start:end]
