"""The HTTP rules of one limiter: options validated once, then client address, exemptions and keys for each RequestView.

A port of packages/typescript/src/http/rules.ts (same method names in snake_case). Everything that can be
checked is checked in ``HttpRules.__init__``; at request time nothing raises.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Optional, cast

from typing_extensions import Literal

from ..core.errors import HaltConfigError
from ..core.types import KeyStrategy
from .forwarded import MAX_HOPS, forwarded_nodes, hop_address, js_length
from .hash import Hmac, sha256_hex, utf8
from .headers import js_number
from .ip import (
    JS_WHITESPACE,
    LOOPBACK_RANGES,
    PRIVATE_CIDRS,
    PRIVATE_RANGES,
    Cidr,
    format_ip,
    in_ranges,
    mask_ip,
    parse_cidr,
    parse_ip,
)
from .paths import HEALTH_CHECK_PATHS, PathExemptions, valid_path_pattern
from .request import RequestView
from .warnings import WarningCode, Warnings

__all__ = [
    "ANONYMOUS_KEY",
    "HTTP_OPTION_NAMES",
    "UNKNOWN_IP_KEY",
    "AddrInfo",
    "ExemptReason",
    "HttpRules",
    "MissingIdentity",
    "api_key_of",
    "default_user_id",
    "identity_key",
]

#: What to do when the key strategy finds no identity (anonymous request under ``user``, no API key, ...).
MissingIdentity = Literal["ip", "shared", "allow"]
#: Why a request is exempt. ``no_identity``: ``on_missing_identity='allow'``.
ExemptReason = Literal["skip", "path", "private_ip", "listed_ip", "no_identity"]

#: The limiter options HttpRules reads (TS HttpOptions, snake_case).
HTTP_OPTION_NAMES: tuple[str, ...] = (
    "trusted_proxies",
    "proxy_header",
    "exempt_private_ips",
    "exempt_health_checks",
    "exemptions",
    "skip",
    "key_extractor",
    "user_id",
    "ipv6_prefix",
    "on_missing_identity",
    "api_key_secret",
    "on_warning",
    "validations",
)

#: Shared key of the ``'shared'`` missing-identity mode.
ANONYMOUS_KEY = "anonymous"
#: Key of requests whose client address is unknown.
UNKNOWN_IP_KEY = "ip:unknown"

_MAX_IDENTITY = 256
_MAX_API_KEY = 4096
_CACHE_MAX = 4096
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BEARER = re.compile(r"bearer[ \t]", re.IGNORECASE | re.ASCII)

_process_hmac: Optional[Hmac] = None
_MISS: Any = object()


@dataclass(frozen=True)
class AddrInfo:
    """What a client address means to this limiter. Cached per address text."""

    #: Canonical address.
    ip: str
    #: Storage identity: ``ip:203.0.113.7``, ``ip:2001:db8:1:2::/64``.
    key: str
    private: bool
    #: In the custom ``exemptions``.
    listed: bool
    trusted: bool
    #: False when the forwarding chain was malformed or too long: the address is the nearest trusted hop, never exempt.
    certain: bool = True


def identity_key(prefix: str, id: str) -> str:
    """An identity as a storage key: ``prefix:id`` when short and printable, else ``prefix#<sha-256>``.

    >>> identity_key("user", "42")
    'user:42'
    >>> identity_key("user", "Ada Lovelace")[:5]
    'user#'
    """
    return f"{prefix}:{id}" if _plain_identity(id) else _hashed_identity(prefix, id)


def _plain_identity(id: str) -> bool:
    """1-256 printable ASCII characters, no space, no ``|`` (the composite separator)."""
    if len(id) == 0 or len(id) > _MAX_IDENTITY or not id.isascii():
        return False
    return all(32 < ord(c) < 127 and c != "|" for c in id)


def _hashed_identity(prefix: str, id: str) -> str:
    return f"{prefix}#{sha256_hex(id, 16)}"


def _fail(code: str, message: str) -> HaltConfigError:
    return HaltConfigError(code, message)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _bool(v: object, default: bool, name: str) -> bool:
    if v is None:
        return default
    if not isinstance(v, bool):
        raise _fail("HALT_INVALID_OPTIONS", f"{name} must be True or False, got {v!r}.")
    return v


def _identity_text(v: object) -> Optional[str]:
    """A string or finite number as text (numbers as JavaScript writes them); anything else is no identity."""
    if isinstance(v, str):
        return v
    if _is_number(v):
        x: float = v  # type: ignore[assignment]
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return js_number(x)
    return None


def default_user_id(user: Any) -> Any:
    """``user.id`` (attribute or mapping key), or ``user`` itself when it is a string or number."""
    if user is None:
        return None
    if isinstance(user, (str, int, float)):
        return user
    if isinstance(user, Mapping):
        return user.get("id")
    return getattr(user, "id", None)


def api_key_of(req: RequestView) -> Optional[str]:
    """The API key of a request: ``X-API-Key``, else ``Authorization: Bearer <key>``; over 4096 characters: none."""
    k = req.header("x-api-key")
    if isinstance(k, str):
        k = k.strip(JS_WHITESPACE)
        if len(k) > 0:
            return k if js_length(k) <= _MAX_API_KEY else None
    auth = req.header("authorization")
    if isinstance(auth, str) and len(auth) > 7 and _BEARER.match(auth) is not None:
        t = auth[7:].strip(JS_WHITESPACE)
        if len(t) > 0 and js_length(t) <= _MAX_API_KEY:
            return t
    return None


class HttpRules:
    """The compiled HTTP options of one limiter.

    ``options`` holds the limiter's HTTP options by name (see :data:`HTTP_OPTION_NAMES`; absent or None means
    the default). ``shared_store`` is True when state is shared between processes (a remote store): the
    API-key secret must then be shared too.
    """

    def __init__(self, options: Mapping[str, Any], shared_store: bool) -> None:
        o = options
        self._shared_store = shared_store
        self.warnings = Warnings(o.get("on_warning"), o.get("validations"))

        trusted: list[Cidr] = []
        proxies = o.get("trusted_proxies")
        if proxies is not None:
            if isinstance(proxies, (str, bytes)) or not isinstance(proxies, (list, tuple, set, frozenset)):
                raise _fail(
                    "HALT_INVALID_TRUSTED_PROXY",
                    f"trusted_proxies must be a list of CIDRs or addresses, like ['10.0.0.0/8'], got {proxies!r}.",
                )
            for entry in proxies:
                ranges: tuple[object, ...] = (
                    LOOPBACK_RANGES if entry == "loopback" else PRIVATE_RANGES if entry == "private" else (entry,)
                )
                for r in ranges:
                    c = parse_cidr(r) if isinstance(r, str) else None
                    if c is None:
                        raise _fail(
                            "HALT_INVALID_TRUSTED_PROXY",
                            f"trusted_proxies: {entry!r} is not an IPv4/IPv6 address or CIDR. Fix: list your proxies "
                            "like ['10.0.0.0/8', '2001:db8::/32'] or use 'loopback' / 'private'.",
                        )
                    if c.bits == 0:
                        raise _fail(
                            "HALT_TRUST_ALL_PROXIES",
                            f"trusted_proxies: '{entry}' trusts every address, so any client could name its own "
                            "address in X-Forwarded-For and escape its limit. Fix: list only your proxies' ranges.",
                        )
                    trusted.append(c)
        self.trusted: tuple[Cidr, ...] = tuple(trusted)

        header = o.get("proxy_header")
        if header is None:
            header = "x-forwarded-for"
        if not isinstance(header, str) or _HEADER_NAME.fullmatch(header) is None:
            raise _fail(
                "HALT_INVALID_PROXY_HEADER",
                f"proxy_header must be a header name like 'x-forwarded-for' or 'forwarded', got {header!r}.",
            )
        self.proxy_header: str = header.lower()

        self.exempt_private: bool = _bool(o.get("exempt_private_ips"), True, "exempt_private_ips")
        health = _bool(o.get("exempt_health_checks"), True, "exempt_health_checks")
        patterns: list[str] = list(HEALTH_CHECK_PATHS) if health else []
        cidrs: list[Cidr] = []
        exemptions = o.get("exemptions")
        if exemptions is not None:
            if isinstance(exemptions, (str, bytes)) or not isinstance(exemptions, (list, tuple, set, frozenset)):
                raise _fail(
                    "HALT_INVALID_EXEMPTION",
                    f"exemptions must be a list of paths, addresses or CIDRs, got {exemptions!r}.",
                )
            for e in exemptions:
                if isinstance(e, str) and e.startswith("/"):
                    if not valid_path_pattern(e):
                        raise _fail(
                            "HALT_INVALID_EXEMPTION",
                            f"exemptions: path '{e}' is not canonical (no %-escapes, ';', '//', '.' or '..' segments, "
                            "trailing '/'). Fix: write it as the router sees it, e.g. '/status' or '/internal/*'.",
                        )
                    patterns.append(e)
                    continue
                c = parse_cidr(e) if isinstance(e, str) else None
                if c is None:
                    raise _fail(
                        "HALT_INVALID_EXEMPTION",
                        f"exemptions: {e!r} is neither a path (starting with '/') nor an address or CIDR. "
                        "Fix: e.g. '/status', '198.51.100.7' or '198.51.100.0/24'.",
                    )
                cidrs.append(c)
        self.paths = PathExemptions(patterns)
        self.exempt_cidrs: tuple[Cidr, ...] = tuple(cidrs)

        for name in ("skip", "key_extractor", "user_id"):
            fn = o.get(name)
            if fn is not None and not callable(fn):
                raise _fail(
                    "HALT_INVALID_CALLBACK", f"{name} must be a function of the request, got {type(fn).__name__}."
                )
        self.skip: Optional[Callable[[RequestView], object]] = o.get("skip")
        self.key_extractor: Optional[Callable[[RequestView], object]] = o.get("key_extractor")
        self.user_id: Optional[Callable[[RequestView], object]] = o.get("user_id")

        prefix = o.get("ipv6_prefix")
        if prefix is None:
            prefix = 64
        if not (_is_number(prefix) and float(prefix).is_integer() and 1 <= prefix <= 128):
            raise _fail(
                "HALT_INVALID_IPV6_PREFIX",
                f"ipv6_prefix must be a whole number from 1 to 128, got {prefix!r}. Fix: 64 (one key per /64, the "
                "usual size of one site's subnet) or 128 (per address).",
            )
        self.ipv6_prefix: int = int(prefix)

        missing = o.get("on_missing_identity")
        if missing is None:
            missing = "ip"
        if missing not in ("ip", "shared", "allow"):
            raise _fail(
                "HALT_INVALID_ON_MISSING_IDENTITY",
                f"on_missing_identity must be 'ip', 'shared' or 'allow', got {missing!r}.",
            )
        self.on_missing: MissingIdentity = cast(MissingIdentity, missing)

        secret = o.get("api_key_secret")
        self._secret_given = secret is not None
        self._hmac: Optional[Hmac] = None
        if secret is not None:
            size = (
                len(utf8(secret))
                if isinstance(secret, str)
                else len(secret)
                if isinstance(secret, (bytes, bytearray))
                else -1
            )
            if size < 16:
                raise _fail(
                    "HALT_INVALID_API_KEY_SECRET",
                    "api_key_secret must be a str or bytes of at least 16 bytes (e.g. 32 random bytes, hex). "
                    "Fix: api_key_secret=os.environ['HALT_API_KEY_SECRET'].",
                )
            self._hmac = Hmac(secret)

        self._cache: dict[str, Optional[AddrInfo]] = {}
        self._private_seen = 0

    # ---- configuration ----

    def validate_strategy(self, policy_name: str, strategy: Optional[str]) -> None:
        """Raise when the given static key strategy cannot work here (``custom`` without an extractor, ...)."""
        if strategy is None or strategy not in KeyStrategy.ALL:
            return  # compile_policy reports unknown strategies
        if strategy == "custom" and self.key_extractor is None:
            raise _fail(
                "HALT_MISSING_KEY_EXTRACTOR",
                f"policy '{policy_name}': key_strategy 'custom' needs key_extractor. "
                "Fix: key_extractor=lambda req: req.header('x-tenant-id').",
            )
        if strategy == "api_key" and self._shared_store and not self._secret_given:
            raise _fail(
                "HALT_API_KEY_SECRET_REQUIRED",
                f"policy '{policy_name}': key_strategy 'api_key' on a shared store needs api_key_secret, so that every "
                "instance hashes an API key to the same storage key. "
                "Fix: api_key_secret=os.environ['HALT_API_KEY_SECRET'] "
                "(the same on every instance, at least 16 bytes).",
            )

    def strategy_of(self, strategy: Optional[str]) -> str:
        """The effective strategy of a policy: its own, else ``custom`` when a key_extractor is set, else ``ip``."""
        if strategy is not None:
            return strategy
        return "custom" if self.key_extractor is not None else "ip"

    # ---- client address ----

    def client(self, req: RequestView, trace: Optional[list[str]] = None) -> Optional[AddrInfo]:
        """The client: the peer, or what trusted proxies say it is. None when unknown."""
        peer = req.ip
        if not isinstance(peer, str) or len(peer) == 0:
            if trace is not None:
                trace.append("no peer address: the client is unknown")
            self.warnings.warn(
                WarningCode.NO_CLIENT_ADDRESS,
                f"a request arrived without a client address, so it is keyed as '{UNKNOWN_IP_KEY}' and shares one "
                "limit with every other such request. Where the server does not expose the peer (some ASGI/WSGI "
                "servers behind a Unix socket), pass get_ip to the adapter. See docs/http.md#client-address.",
            )
            return None
        info = self.addr(peer)
        if info is None:
            if trace is not None:
                trace.append(f"peer address '{peer[:64]}' is not an IP address: the client is unknown")
            return None
        if not info.trusted:
            if trace is not None:
                none = "" if self.trusted else " (no trusted_proxies configured)"
                trace.append(f"peer {info.ip} is not a trusted proxy: it is the client{none}")
            # Look for an unconfigured proxy's header: on the first 1024 requests from private peers, then every 64th.
            if info.private and not self.trusted:
                seen = self._private_seen
                self._private_seen = seen + 1
                if (seen < 1024 or (self._private_seen & 63) == 0) and self.warnings.pending(
                    WarningCode.UNCONFIGURED_PROXY
                ):
                    self._check_unconfigured_proxy(req, info)
            return info
        value = req.header(self.proxy_header)
        if not isinstance(value, str) or len(value) == 0:
            if trace is not None:
                trace.append(
                    f"peer {info.ip} is a trusted proxy but sent no {self.proxy_header}: the peer is the client"
                )
            return info
        if trace is not None:
            trace.append(f"peer {info.ip} is a trusted proxy: reading {self.proxy_header} right to left")
        if self.proxy_header == "forwarded":
            return self._walk_forwarded(value, info, trace)
        return self._walk_list(value, info, trace)

    def _check_unconfigured_proxy(self, req: RequestView, info: AddrInfo) -> None:
        if req.header("x-forwarded-for") is not None:
            via = "X-Forwarded-For"
        elif req.header("forwarded") is not None:
            via = "Forwarded"
        else:
            return
        effect = (
            "with exempt_private_ips (the default) every request is exempt and NOTHING IS LIMITED"
            if self.exempt_private
            else "every client shares that one limit"
        )
        self.warnings.warn(
            WarningCode.UNCONFIGURED_PROXY,
            f"a request from the private address {info.ip} carries {via}, but no trusted_proxies are configured. "
            f"This limiter is almost certainly behind a proxy or load balancer, so every client looks like {info.ip}: "
            f"{effect}. Fix: RateLimiter(..., trusted_proxies=['{info.ip}']) with your proxies' addresses or CIDRs "
            "(e.g. '10.0.0.0/8'). If there is no proxy, silence this with "
            "validations={'HALT_UNCONFIGURED_PROXY': False}. See docs/http.md#trusted-proxies.",
        )

    def _walk_list(self, value: str, peer: AddrInfo, trace: Optional[list[str]]) -> AddrInfo:
        """X-Forwarded-For style: comma-separated hops, right to left, skipping trusted ones."""
        last = peer
        end = len(value)
        hops = 1
        while True:
            comma = value.rfind(",", 0, end) if end > 0 else -1
            token = value[comma + 1 : end]
            text = hop_address(token)
            info = None if text is None else self.addr(text)
            if info is None:
                return self._uncertain(last, f"hop '{token.strip(JS_WHITESPACE)[:64]}' is not an address", trace)
            if not info.trusted:
                if trace is not None:
                    trace.append(f"hop {info.ip} is not trusted: it is the client")
                return info
            if trace is not None:
                trace.append(f"hop {info.ip} is trusted: skipped")
            last = info
            if comma < 0:
                if trace is not None:
                    trace.append(f"every hop is trusted: the leftmost, {info.ip}, is the client")
                return info
            if hops >= MAX_HOPS:
                return self._uncertain(last, f"more than {MAX_HOPS} trusted hops", trace)
            end = comma
            hops += 1

    def _walk_forwarded(self, value: str, peer: AddrInfo, trace: Optional[list[str]]) -> AddrInfo:
        """RFC 7239 Forwarded: the ``for=`` of each element, right to left, skipping trusted ones."""
        nodes = forwarded_nodes(value)
        if nodes is None:
            return self._uncertain(peer, "Forwarded cannot be parsed", trace)
        last = peer
        hops = 1
        for i in range(len(nodes) - 1, -1, -1):
            node = nodes[i]
            text = None if node is None else hop_address(node)
            info = None if text is None else self.addr(text)
            if info is None:
                what = "malformed" if node is None else f"'{node[:64]}'"
                return self._uncertain(last, f"element {i + 1} has no usable for= ({what})", trace)
            if not info.trusted:
                if trace is not None:
                    trace.append(f"for={info.ip} is not trusted: it is the client")
                return info
            if trace is not None:
                trace.append(f"for={info.ip} is trusted: skipped")
            last = info
            if hops >= MAX_HOPS and i > 0:
                return self._uncertain(last, f"more than {MAX_HOPS} trusted hops", trace)
            hops += 1
        if trace is not None:
            trace.append(f"every hop is trusted: the leftmost, {last.ip}, is the client")
        return last

    def _uncertain(self, last: AddrInfo, why: str, trace: Optional[list[str]]) -> AddrInfo:
        """The nearest trusted hop stands in for a client we could not see; it is never exempt."""
        if trace is not None:
            trace.append(f"{why}: stopping at {last.ip}, which is not exempt")
        return replace(last, private=False, listed=False, certain=False)

    def addr(self, text: str) -> Optional[AddrInfo]:
        """Parse and describe an address text, cached (bounded)."""
        cache = self._cache
        hit = cache.get(text, _MISS)
        if hit is not _MISS:
            return cast(Optional[AddrInfo], hit)
        a = parse_ip(text)
        info: Optional[AddrInfo] = None
        if a is not None:
            ip = format_ip(a)
            p = self.ipv6_prefix
            key = f"ip:{format_ip(mask_ip(a, p))}/{p}" if a.version == 6 and p < 128 else f"ip:{ip}"
            info = AddrInfo(
                ip=ip,
                key=key,
                private=in_ranges(PRIVATE_CIDRS, a),
                listed=in_ranges(self.exempt_cidrs, a),
                trusted=in_ranges(self.trusted, a),
            )
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[text] = info
        return info

    # ---- exemptions ----

    def ip_exemption(self, client: Optional[AddrInfo]) -> Optional[ExemptReason]:
        """Why the client's address makes the request exempt, if it does."""
        if client is None or not client.certain:
            return None
        if client.listed:
            return "listed_ip"
        if client.private and self.exempt_private:
            return "private_ip"
        return None

    def skipped(self, req: RequestView) -> bool:
        """``skip(req)``, where a raise counts as False."""
        if self.skip is None:
            return False
        try:
            return self.skip(req) is True
        except Exception as e:
            self.callback_failed("skip", e)
            return False

    # ---- keys ----

    def key(
        self, strategy: str, req: RequestView, client: Optional[AddrInfo], trace: Optional[list[str]] = None
    ) -> Optional[str]:
        """The identity for ``strategy``, or None when the request has none."""
        if strategy == "ip":
            return client.key if client is not None else UNKNOWN_IP_KEY
        if strategy == "user" or strategy == "composite":
            id = self._user(req)
            if trace is not None:
                trace.append(
                    "no user on the request"
                    if id is None
                    else ("user id from the request" if strategy == "user" else "user id and client address")
                )
            if id is None:
                return None
            user_key = identity_key("user", id)
            if strategy == "user":
                return user_key
            return f"{user_key}|{client.key if client is not None else UNKNOWN_IP_KEY}"
        if strategy == "api_key":
            raw = api_key_of(req)
            if trace is not None:
                trace.append(
                    "no API key (X-API-Key or Authorization: Bearer)"
                    if raw is None
                    else "API key, as a keyed hash (HMAC-SHA-256)"
                )
            return None if raw is None else f"apikey:{self._api_key_hmac().hex(raw, 16)}"
        if strategy == "custom":
            try:
                v = self.key_extractor(req) if self.key_extractor is not None else None
            except Exception as e:
                self.callback_failed("key_extractor", e)
                return None
            s = _identity_text(v)
            if trace is not None:
                trace.append("key_extractor returned no identity" if not s else "identity from key_extractor")
            if not s:
                return None
            return s if _plain_identity(s) else _hashed_identity("custom", s)
        return None

    def _user(self, req: RequestView) -> Optional[str]:
        try:
            v = self.user_id(req) if self.user_id is not None else default_user_id(req.user)
        except Exception as e:
            self.callback_failed("user_id", e)
            return None
        s = _identity_text(v)
        return s if s else None

    def _api_key_hmac(self) -> Hmac:
        if self._hmac is not None:
            return self._hmac
        if self._shared_store:
            self.warnings.warn(
                WarningCode.API_KEY_SECRET_NOT_SHARED,
                "the 'api_key' strategy runs on a shared store without api_key_secret, so each process hashes API "
                "keys with its own random secret and keeps its own counters: the limit is multiplied by the number "
                "of instances. Fix: api_key_secret=os.environ['HALT_API_KEY_SECRET'] (the same on every instance).",
            )
        global _process_hmac
        if _process_hmac is None:
            _process_hmac = Hmac(os.urandom(32))
        self._hmac = _process_hmac
        return self._hmac

    def callback_failed(self, name: str, e: BaseException) -> None:
        outcome = "not skipped" if name == "skip" else "treated as having no identity"
        self.warnings.warn(
            WarningCode.CALLBACK_FAILED,
            f"{name} raised ({e}); the request was {outcome}. Fix the function; this is reported once.",
        )
