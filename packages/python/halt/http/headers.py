"""Decision -> response: rate-limit headers in four formats, Retry-After, the 429 (or 503) status and JSON body.

A port of packages/typescript/src/http/headers.ts; spec/http/headers.json and restrictive.json pin both.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Optional, TypeVar, Union

from typing_extensions import Literal

if TYPE_CHECKING:
    from ..core.types import Decision

__all__ = [
    "HEADER_FORMATS",
    "HeaderFormat",
    "is_header_format",
    "js_number",
    "more_restrictive",
    "rate_limit_headers",
    "rejection_body",
    "rejection_status",
    "retry_after_seconds",
    "write_rate_limit_headers",
]

#: ``'standard'`` (default): ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (epoch seconds);
#: ``'ietf'``: ``RateLimit-Policy`` and ``RateLimit`` structured fields (draft-ietf-httpapi-ratelimit-headers-10/11);
#: ``'legacy'``: ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset``; ``'none'``: none of them.
#: Every format adds ``Retry-After`` (seconds) to a rejection.
HeaderFormat = Literal["standard", "ietf", "legacy", "none"]
HEADER_FORMATS: tuple[str, ...] = ("standard", "ietf", "legacy", "none")

T = TypeVar("T")
#: Sets one header on a framework's response object.
SetHeader = Callable[[T, str, str], None]


def is_header_format(f: object) -> bool:
    """Whether ``f`` names a header format."""
    return isinstance(f, str) and f in HEADER_FORMATS


def js_number(x: float) -> str:
    """A number as JavaScript's ``String(x)`` writes it (``42``, not ``42.0``; ``0.00001``; ``1e+21``).

    Both languages print the shortest digits that round-trip; only the layout differs (ECMA-262 Number::toString),
    so identities and headers made of numbers are the same text in both SDKs.
    """
    if isinstance(x, int):
        return str(x)
    if x != x:
        return "NaN"
    if x in (math.inf, -math.inf):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    mantissa, _, exp_text = repr(abs(x)).partition("e")
    exp = int(exp_text) if exp_text else 0
    whole, _, frac = mantissa.partition(".")
    if whole.strip("0") == "":
        zeros = len(frac) - len(frac.lstrip("0"))
        digits, n = frac.lstrip("0"), exp - zeros
    else:
        digits, n = (whole + frac).lstrip("0"), len(whole.lstrip("0")) + exp
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") + str(abs(e))
    return sign + out


def _whole(x: float) -> str:
    return str(math.floor(x)) if math.isfinite(x) else js_number(x)


def write_rate_limit_headers(
    d: Decision,
    format: str,
    target: T,
    set_header: Callable[[T, str, str], None],
    window_seconds: Union[float, Callable[[str], float]] = 0.0,
    now_ms: float = 0.0,
) -> None:
    """Write the headers describing ``d`` to ``target`` with ``set_header(target, name, value)``.

    ``window_seconds`` and ``now_ms`` are only read by the ``'ietf'`` format (its ``w`` and relative ``t``).
    Exempt decisions, and those of a limiter whose every policy is shadow, get no headers. A decision of several
    policies (``d.policies``) gets, in the ``'ietf'`` format, one list item per enforced policy in each field
    (``window_seconds`` then maps a policy name to its window); the other formats describe ``d`` itself.

    Example::

        write_rate_limit_headers(d, "standard", response, lambda r, n, v: r.headers.__setitem__(n, v))
    """
    if d.reason == "exempt" or d.shadow:
        return
    if format == "standard":
        set_header(target, "RateLimit-Limit", _whole(d.limit))
        set_header(target, "RateLimit-Remaining", js_number(d.remaining))
        set_header(target, "RateLimit-Reset", js_number(d.reset_at))
    elif format == "ietf":
        items = [d] if d.policies is None else [p for p in d.policies if not p.shadow]
        policy: list[str] = []
        limit: list[str] = []
        for p in items:
            name = _sf_string(p.policy)
            t = max(0, p.reset_at - math.floor(now_ms / 1000))
            w = max(1, math.ceil(window_seconds(p.policy) if callable(window_seconds) else window_seconds))
            policy.append(f"{name};q={_whole(p.limit)};w={w}")
            limit.append(f"{name};r={js_number(p.remaining)};t={js_number(t)}")
        set_header(target, "RateLimit-Policy", ", ".join(policy))
        set_header(target, "RateLimit", ", ".join(limit))
    elif format == "legacy":
        set_header(target, "X-RateLimit-Limit", _whole(d.limit))
        set_header(target, "X-RateLimit-Remaining", js_number(d.remaining))
        set_header(target, "X-RateLimit-Reset", js_number(d.reset_at))
    if not d.allowed:
        set_header(target, "Retry-After", js_number(retry_after_seconds(d)))


def _set_item(target: dict[str, str], name: str, value: str) -> None:
    target[name] = value


def rate_limit_headers(
    d: Decision, format: str = "standard", window_seconds: float = 0.0, now_ms: float = 0.0
) -> dict[str, str]:
    """The headers of ``d`` as a dict (see :func:`write_rate_limit_headers`).

    >>> rate_limit_headers(limiter.check("user:42"))  # doctest: +SKIP
    {'RateLimit-Limit': '100', 'RateLimit-Remaining': '99', 'RateLimit-Reset': '1764081723'}
    """
    out: dict[str, str] = {}
    write_rate_limit_headers(d, format, out, _set_item, window_seconds, now_ms)
    return out


def retry_after_seconds(d: Decision) -> int:
    """Seconds a rejected client should wait: at least 1."""
    r = d.retry_after
    return int(r) if r >= 1 else 1


def rejection_status(d: Decision) -> int:
    """503 when the limiter rejected because its store is down (``on_store_error='closed'``), else 429."""
    return 503 if d.reason == "store_error" else 429


def rejection_body(d: Decision) -> str:
    """The JSON body of a rejection.

    ``{"error":"rate_limit_exceeded","message":"Too many requests. Please try again later.","retry_after":42}``
    (``rate_limiter_unavailable`` with status 503 when the store is down and the limiter fails closed;
    ``quota_exceeded`` with the quota, its limit and ``reset_at``, an ISO 8601 time, for an exhausted quota).
    """
    s = retry_after_seconds(d)
    if d.reason == "quota":
        at = _iso(d.reset_at)
        return (
            f'{{"error":"quota_exceeded","message":"Quota exceeded. It resets at {at}.","quota":'
            f'{json.dumps(d.policy, ensure_ascii=False)},"limit":{js_number(d.limit)},"reset_at":"{at}",'
            f'"retry_after":{s}}}'
        )
    if d.reason == "store_error":
        return (
            '{"error":"rate_limiter_unavailable","message":"Rate limiting is temporarily unavailable. '
            f'Please try again later.","retry_after":{s}}}'
        )
    return f'{{"error":"rate_limit_exceeded","message":"Too many requests. Please try again later.","retry_after":{s}}}'


def _iso(epoch_seconds: float) -> str:
    """An instant as JavaScript's ``toISOString()`` writes it, without ``.000`` (``2026-02-01T00:00:00Z``)."""
    t = datetime.fromtimestamp(0, timezone.utc) + timedelta(seconds=epoch_seconds)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{t.microsecond // 1000:03d}Z" if t.microsecond // 1000 else "Z")


def more_restrictive(a: Decision, b: Decision) -> bool:
    """Whether ``a`` is more restrictive than ``b``, i.e. the response headers should describe ``a``.

    A rejection beats an admission (the longer wait wins between rejections); between admissions fewer
    remaining units win, then the later reset. An exempt decision never wins.
    """
    if a.reason == "exempt":
        return False
    if b.reason == "exempt":
        return True
    if a.allowed != b.allowed:
        return not a.allowed
    if not a.allowed:
        return a.retry_after > b.retry_after
    if a.remaining != b.remaining:
        return a.remaining < b.remaining
    return a.reset_at > b.reset_at


def supersedes(d: Decision, previous: Optional[Decision]) -> bool:
    """Whether a response described by ``previous`` (an earlier limiter on the request) should now describe ``d``."""
    return previous is None or more_restrictive(d, previous)


def _sf_string(s: str) -> str:
    """An RFC 8941 sf-string: printable ASCII, ``"`` and ``\\`` escaped; others become ``_`` (one per UTF-16 unit)."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 32 <= c < 127:
            out.append(ch)
        else:
            out.append("__" if c > 0xFFFF else "_")
    out.append('"')
    return "".join(out)
