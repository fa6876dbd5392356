"""Forwarding headers: X-Forwarded-For style lists and RFC 7239 Forwarded, split into hop addresses without raising.

A port of packages/typescript/src/http/forwarded.ts.
"""

from __future__ import annotations

import re
from typing import Optional

from .ip import JS_WHITESPACE

__all__ = ["MAX_FORWARDED_LENGTH", "MAX_HOPS", "forwarded_nodes", "hop_address", "js_length"]

#: Most hops read from a forwarding header (right to left); a longer chain of trusted hops is malformed.
MAX_HOPS = 32
#: Longest forwarding header parsed (UTF-16 code units, as in TypeScript); longer values are malformed as a whole.
MAX_FORWARDED_LENGTH = 16_384

_PORT = re.compile(r"[0-9]{1,5}")
_BRACKET_PORT = re.compile(r":[0-9]{1,5}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


def js_length(s: str) -> int:
    """The length of ``s`` in UTF-16 code units, as JavaScript counts it (so both SDKs cut at the same place)."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def hop_address(token: str) -> Optional[str]:
    """The address part of one hop of an X-Forwarded-For style list, or None.

    Strips whitespace, a port (``203.0.113.7:4711``, ``[2001:db8::1]:4711``) and brackets. The caller still
    parses what is returned, which may fail.
    """
    t = token.strip(JS_WHITESPACE)
    if len(t) == 0:
        return None
    if t[0] == "[":
        close = t.find("]")
        if close < 0:
            return None
        rest = t[close + 1 :]
        if rest != "" and _BRACKET_PORT.fullmatch(rest) is None:
            return None
        return t[1:close]
    colon = t.find(":")
    if colon >= 0 and t.find(":", colon + 1) < 0:
        # a.b.c.d:port (exactly one colon: IPv6 has at least two)
        if _PORT.fullmatch(t, colon + 1) is None:
            return None
        return t[:colon]
    return t


def forwarded_nodes(value: str) -> Optional[list[Optional[str]]]:
    """The ``for=`` node of each element of an RFC 7239 ``Forwarded`` value, left to right.

    Each is a hop string for :func:`hop_address` (quotes removed), or None for an element without a single
    ``for=`` or not well formed. Returns None when the whole value cannot be split (unbalanced quotes, too long).

    >>> forwarded_nodes('for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"')
    ['192.0.2.60', '[2001:db8::17]:4711']
    """
    if js_length(value) > MAX_FORWARDED_LENGTH:
        return None
    out: list[Optional[str]] = []
    node: Optional[str] = None
    for_count = 0
    bad = False
    i = 0
    n = len(value)
    while i <= n:
        while i < n and value[i] in " \t":
            i += 1
        if i == n:
            out.append(None if bad or for_count != 1 else node)
            break
        c = value[i]
        if c == ",":
            out.append(None if bad or for_count != 1 else node)
            node = None
            for_count = 0
            bad = False
            i += 1
            continue
        if c == ";":
            i += 1
            continue
        # pair: token "=" (token | quoted-string)
        eq = value.find("=", i)
        if eq < 0:
            return None
        name = value[i:eq].strip(JS_WHITESPACE).lower()
        if _TOKEN.fullmatch(name) is None:
            bad = True
        i = eq + 1
        if i < n and value[i] == '"':
            i += 1
            closed = False
            chars: list[str] = []
            while i < n:
                q = value[i]
                if q == "\\" and i + 1 < n:
                    chars.append(value[i + 1])
                    i += 2
                    continue
                if q == '"':
                    closed = True
                    i += 1
                    break
                chars.append(q)
                i += 1
            if not closed:
                return None
            v = "".join(chars)
        else:
            start = i
            while i < n and value[i] not in ";, \t":
                i += 1
            v = value[start:i]
        # After a value: OWS then ';', ',' or the end.
        while i < n and value[i] in " \t":
            i += 1
        if i < n and value[i] not in ";,":
            bad = True
        if name == "for":
            for_count += 1
            node = v
        if len(out) > 4 * MAX_HOPS:
            return None
    return out
