"""Path exemptions: exact paths and ``/prefix/*`` patterns, matched on canonical paths only (no crafted path)."""

from __future__ import annotations

from typing import Iterable

from .request import path_of

__all__ = ["HEALTH_CHECK_PATHS", "PathExemptions", "is_canonical_path", "valid_path_pattern"]

#: Health-check paths exempt by default (``exempt_health_checks=True``).
HEALTH_CHECK_PATHS: tuple[str, ...] = ("/health", "/ping", "/ready", "/healthz", "/livez")

# Unreserved and sub-delim characters, plus ':' and '@' (no '%', ';', '\\', '/', '?', '#').
_SEGMENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,=:@")


def is_canonical_path(path: str) -> bool:
    """Whether ``path`` is canonical: only unreserved and sub-delim characters, no empty, ``.`` or ``..`` segment.

    Routers disagree on how to normalise anything else (decode? fold case? strip ``;x``? resolve ``..``?), so an
    exemption never covers a path that needs it.

    >>> is_canonical_path("/internal/jobs"), is_canonical_path("/internal/../admin")
    (True, False)
    """
    if len(path) == 0 or path[0] != "/":
        return False
    segments = path[1:].split("/")
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == "":
            if i < last:
                return False  # '//'
            continue
        if seg == "." or seg == "..":
            return False
        if not _SEGMENT_CHARS.issuperset(seg):
            return False
    return True


class PathExemptions:
    """Compiled path exemptions.

    A pattern is an exact path (``/status``) or a prefix (``/internal/*``, matching ``/internal`` and everything
    below it). Matching is case-sensitive and allows one trailing slash.
    """

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        self._exact: set[str] = set()
        self._prefixes: list[str] = []
        for p in patterns:
            if p.endswith("/*"):
                self._prefixes.append(p[:-2])
            else:
                self._exact.add(p)

    @property
    def size(self) -> int:
        return len(self._exact) + len(self._prefixes)

    def matches(self, raw_path: object) -> bool:
        """Whether the request path (query string ignored) is exempt."""
        if not isinstance(raw_path, str):
            return False
        path = path_of(raw_path)
        # Exact entries are canonical by construction, so a hit needs no further check.
        if path in self._exact:
            return True
        n = len(path)
        if n > 1 and path[-1] == "/" and path[-2] != "/" and path[:-1] in self._exact:
            return True
        for prefix in self._prefixes:
            if path == prefix or (path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == "/"):
                return is_canonical_path(path)
        return False


def valid_path_pattern(p: str) -> bool:
    """Whether ``p`` is a valid exemption pattern: a canonical path, optionally ending in ``/*``."""
    base = p[:-2] if p.endswith("/*") else p
    if base == "" and p == "/*":
        return True
    return len(base) > 0 and is_canonical_path(base) and (base == "/" or not base.endswith("/"))
