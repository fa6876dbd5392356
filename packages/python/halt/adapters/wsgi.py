"""The RequestView of a WSGI environ (or Django's ``request.META``), shared by the Flask and Django adapters."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

__all__ = ["EnvironRequestView"]


class EnvironRequestView:
    """A RequestView over a WSGI environ.

    The client is ``REMOTE_ADDR``, the socket's peer: Halt's ``trusted_proxies`` decide about forwarding
    headers, so do not rewrite it first (werkzeug's ProxyFix, a Django middleware setting REMOTE_ADDR). The
    path is the raw request target when the server gives it (``RAW_URI``/``REQUEST_URI``: gunicorn, uWSGI,
    werkzeug), else ``SCRIPT_NAME + PATH_INFO``.
    """

    # __weakref__: telemetry keeps the id it makes up for a request without X-Request-Id per view.
    __slots__ = ("__weakref__", "_get_user", "environ")

    def __init__(self, environ: Mapping[str, Any], get_user: Callable[[], Any]) -> None:
        self.environ = environ
        self._get_user = get_user

    @property
    def ip(self) -> Optional[str]:
        addr = self.environ.get("REMOTE_ADDR")
        return addr if isinstance(addr, str) else None

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", "GET"))

    @property
    def path(self) -> str:
        e = self.environ
        raw = e.get("RAW_URI") or e.get("REQUEST_URI")
        if isinstance(raw, str) and raw:
            return raw
        return str(e.get("SCRIPT_NAME", "")) + str(e.get("PATH_INFO", "/"))

    def header(self, name: str) -> Optional[str]:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        v = self.environ.get(key)
        return v if isinstance(v, str) else None

    @property
    def user(self) -> Any:
        return self._get_user()
