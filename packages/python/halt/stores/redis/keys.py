"""Storage keys ``<prefix><ns>:{<identity>}`` (spec/KEYS.md): escaping and SCAN patterns."""

from __future__ import annotations

import re
from typing import Optional

_TAG_CHARS = re.compile(r"[%{}]")
_ENCODED = {"%": "%25", "{": "%7B", "}": "%7D"}
_GLOB = re.compile(r"([*?\[\]\\^-])")


def escape_key_part(s: str) -> str:
    """Percent-encode ``%``, ``{`` and ``}`` (and nothing else): the only ``{`` in a key then opens the identity's
    hash tag, and the tag spans the whole identity. Injective."""
    return _TAG_CHARS.sub(lambda m: _ENCODED[m.group(0)], s) if ("%" in s or "{" in s or "}" in s) else s


def storage_key(prefix: str, ns: str, id: str) -> str:
    """The Redis key of one identity's state under a namespace (``<policy name>:<algorithm code>``)."""
    return f"{prefix}{escape_key_part(ns)}:{{{escape_key_part(id)}}}"


def glob_escape(s: str) -> str:
    """Escape the characters Redis glob patterns treat specially."""
    return _GLOB.sub(r"\\\1", s)


def scan_pattern(prefix: str, ns: Optional[str] = None) -> str:
    """A SCAN MATCH pattern for every key of ``ns`` (or of every namespace) under ``prefix``."""
    if ns is None:
        return f"{glob_escape(prefix)}*"
    return f"{glob_escape(prefix + escape_key_part(ns))}:{{*"
