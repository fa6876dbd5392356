"""IP addresses and CIDR ranges: strict parsing, canonical text (RFC 5952), prefix masks, range lists.

A port of packages/typescript/src/http/ip.ts; spec/http/addresses.json pins both. IPv6 values are 128-bit ints.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional, Sequence

__all__ = [
    "LOOPBACK_RANGES",
    "PRIVATE_CIDRS",
    "PRIVATE_RANGES",
    "Cidr",
    "IpAddress",
    "cidr_contains",
    "format_ip",
    "in_ranges",
    "mask_ip",
    "parse_cidr",
    "parse_ip",
]

_MAX_LEN = 100
_ZONE = re.compile(r"[0-9A-Za-z._~-]{1,64}")
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_BITS = re.compile(r"[0-9]{1,3}")
_V4_MASK = 0xFFFFFFFF
_V6_MASK = (1 << 128) - 1
_MAPPED_PREFIX = 0xFFFF << 32


class IpAddress(NamedTuple):
    """A parsed address: IPv4 (and IPv4-mapped IPv6, ``::ffff:a.b.c.d``) is version 4; ``value`` is unsigned."""

    version: int
    value: int


class Cidr(NamedTuple):
    """A range ``address/bits``, the address already masked to ``bits``; ``text`` is canonical (``10.0.0.0/8``)."""

    version: int
    bits: int
    address: IpAddress
    text: str


def parse_ip(s: str) -> Optional[IpAddress]:
    """Parse an address strictly, or return None.

    Dotted-quad IPv4 without leading zeros, or IPv6 (compressed, with an IPv4 tail, with a zone id
    ``%eth0`` which is dropped). IPv4-mapped IPv6 becomes IPv4.

    >>> format_ip(parse_ip("::ffff:203.0.113.7"))
    '203.0.113.7'
    """
    if not isinstance(s, str) or len(s) == 0 or len(s) > _MAX_LEN:
        return None
    if ":" not in s:
        v = _parse_v4(s)
        return None if v < 0 else IpAddress(4, v)
    pct = s.find("%")
    if pct >= 0:
        if _ZONE.fullmatch(s, pct + 1) is None:
            return None
        s = s[:pct]
    value = _parse_v6(s)
    if value is None:
        return None
    if value >> 32 == 0xFFFF:
        return IpAddress(4, value & _V4_MASK)
    return IpAddress(6, value)


def _parse_v4(s: str) -> int:
    """A dotted quad: the value, or -1."""
    parts = s.split(".")
    if len(parts) != 4:
        return -1
    value = 0
    for p in parts:
        n = len(p)
        if n == 0 or n > 3 or not _DIGITS.issuperset(p) or (n > 1 and p[0] == "0"):
            return -1
        b = int(p)
        if b > 255:
            return -1
        value = value * 256 + b
    return value


def _parse_v6(s: str) -> Optional[int]:
    """IPv6 text (no zone): the 128-bit value, or None."""
    if "::" in s:
        if s.count("::") > 1 or ":::" in s:
            return None
        head_text, tail_text = s.split("::")
        head = _groups(head_text, tail_allowed=False)  # an IPv4 tail ends the address
        tail = _groups(tail_text, tail_allowed=True)
        if head is None or tail is None or len(head) + len(tail) > 7:
            return None
        groups = head + [0] * (8 - len(head) - len(tail)) + tail
    else:
        g = _groups(s, tail_allowed=True)
        if g is None or len(g) != 8:
            return None
        groups = g
    value = 0
    for x in groups:
        value = (value << 16) | x
    return value


def _groups(text: str, tail_allowed: bool) -> Optional[list[int]]:
    """Colon-separated hex groups (the last may be a dotted IPv4 tail, as two groups)."""
    if text == "":
        return []
    parts = text.split(":")
    out: list[int] = []
    last = len(parts) - 1
    for i, p in enumerate(parts):
        if i == last and tail_allowed and "." in p:
            v = _parse_v4(p)
            if v < 0:
                return None
            out.append(v >> 16)
            out.append(v & 0xFFFF)
            break
        if len(p) == 0 or len(p) > 4 or not _HEX.issuperset(p):
            return None
        out.append(int(p, 16))
    if len(out) > 8:
        return None
    return out


def format_ip(a: IpAddress) -> str:
    """Canonical text: dotted quad for IPv4, RFC 5952 for IPv6 (lowercase, longest zero run as ``::``, first on a tie).

    >>> format_ip(parse_ip("2001:DB8:0:0:0:0:0:1"))
    '2001:db8::1'
    """
    v = a.value
    if a.version == 4:
        return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
    g = [(v >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    best_at = -1
    best_len = 1
    i = 0
    while i < 8:
        if g[i] != 0:
            i += 1
            continue
        j = i
        while j < 8 and g[j] == 0:
            j += 1
        if j - i > best_len:
            best_at = i
            best_len = j - i
        i = j
    if best_at < 0:
        return ":".join(f"{x:x}" for x in g)
    left = ":".join(f"{x:x}" for x in g[:best_at])
    right = ":".join(f"{x:x}" for x in g[best_at + best_len :])
    return f"{left}::{right}"


def mask_ip(a: IpAddress, bits: int) -> IpAddress:
    """The address with all but the first ``bits`` bits zeroed."""
    width = 32 if a.version == 4 else 128
    full = _V4_MASK if a.version == 4 else _V6_MASK
    if bits <= 0:
        return IpAddress(a.version, 0)
    if bits >= width:
        return a
    mask = full ^ ((1 << (width - bits)) - 1)
    return IpAddress(a.version, a.value & mask)


def parse_cidr(s: str) -> Optional[Cidr]:
    """Parse ``a.b.c.d/n``, ``x::/n`` or a single address (a /32 or /128 range), or return None.

    The address part is masked: ``parse_cidr("10.1.2.3/8").text == "10.0.0.0/8"``.
    """
    if not isinstance(s, str):
        return None
    t = _js_trim(s)
    slash = t.find("/")
    addr_text = t if slash < 0 else t[:slash]
    a = parse_ip(addr_text)
    if a is None:
        return None
    width = 32 if a.version == 4 else 128
    bits = width
    if slash >= 0:
        b = t[slash + 1 :]
        if _BITS.fullmatch(b) is None:
            return None
        bits = int(b)
        # An IPv4-mapped range (::ffff:10.0.0.0/104) counts its bits in IPv6 terms.
        if a.version == 4 and ":" in addr_text:
            bits -= 96
        if bits < 0 or bits > width:
            return None
    address = mask_ip(a, bits)
    return Cidr(a.version, bits, address, f"{format_ip(address)}/{bits}")


def cidr_contains(c: Cidr, a: IpAddress) -> bool:
    """Whether ``a`` lies in ``c``."""
    if c.version != a.version:
        return False
    width = 32 if a.version == 4 else 128
    shift = width - c.bits
    return (a.value >> shift) == (c.address.value >> shift)


def in_ranges(ranges: Sequence[Cidr], a: IpAddress) -> bool:
    """Whether ``a`` lies in any range of ``ranges``."""
    return any(cidr_contains(c, a) for c in ranges)


# JavaScript's String.prototype.trim() set (WhiteSpace and LineTerminator), so both SDKs trim alike.
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def _js_trim(s: str) -> str:
    return s.strip(JS_WHITESPACE)


#: Loopback ranges: ``127.0.0.0/8``, ``::1/128``.
LOOPBACK_RANGES: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
#: Private and loopback ranges exempt by default (``exempt_private_ips``).
PRIVATE_RANGES: tuple[str, ...] = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
)


def _must(text: str) -> Cidr:
    c = parse_cidr(text)
    assert c is not None, text  # constants above
    return c


PRIVATE_CIDRS: tuple[Cidr, ...] = tuple(_must(r) for r in PRIVATE_RANGES)
