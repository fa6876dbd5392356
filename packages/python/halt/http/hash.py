"""SHA-256 and HMAC-SHA-256 of text, byte for byte what packages/typescript/src/http/hash.ts computes.

Used to keep raw API keys (and oversized identities) out of storage keys, logs and telemetry. Text is encoded
as UTF-8 the way JavaScript's TextEncoder does it (a lone surrogate becomes U+FFFD), so a Node and a Python
service hash every identity alike and share one limit.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Union

__all__ = ["Hmac", "sha256_hex", "utf8"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8(s: str) -> bytes:
    """UTF-8 of ``s`` as TextEncoder writes it: never raises, lone surrogates become U+FFFD."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", s).encode("utf-8")


def sha256_hex(data: Union[str, bytes], nbytes: int = 32) -> str:
    """Lowercase hex of the first ``nbytes`` bytes of SHA-256 of bytes, or of a string's UTF-8."""
    raw = utf8(data) if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[: 2 * nbytes]


class Hmac:
    """HMAC-SHA-256 with a fixed key; the keyed state is built once and copied per message.

    >>> len(Hmac("a-long-random-secret").hex("sk_live_123", 16))
    32
    """

    __slots__ = ("_base",)

    def __init__(self, key: Union[str, bytes]) -> None:
        self._base = hmac.new(utf8(key) if isinstance(key, str) else bytes(key), digestmod=hashlib.sha256)

    def mac(self, data: Union[str, bytes]) -> bytes:
        """The 32-byte MAC of bytes, or of a string's UTF-8."""
        h = self._base.copy()
        h.update(utf8(data) if isinstance(data, str) else data)
        return h.digest()

    def hex(self, data: Union[str, bytes], nbytes: int = 32) -> str:
        """Hex of the MAC's first ``nbytes`` bytes (default all 32)."""
        h = self._base.copy()
        h.update(utf8(data) if isinstance(data, str) else data)
        return h.hexdigest()[: 2 * nbytes]
