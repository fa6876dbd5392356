"""Generated hostile requests: malformed, huge, repeated forwarding headers, odd addresses, path tricks, giant API keys.

Nothing may raise, keys stay bounded, and no input earns an exemption it should not have (the TypeScript suite
test/http/hostile.test.ts makes the same claims).
"""

from __future__ import annotations

import re
from functools import reduce
from typing import Any, Callable, Optional

from hypothesis import given, settings
from hypothesis import strategies as st

from halt.core.types import Policy
from halt.http.forwarded import forwarded_nodes, hop_address
from halt.http.ip import format_ip, parse_ip
from halt.http.paths import HEALTH_CHECK_PATHS
from halt.http.request import path_of
from tests.http.support import http_limiter, view

FRAGMENTS = [
    "1.2.3.4", "10.0.0.1", "127.0.0.1", "192.168.1.1", "::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "fe80::1%eth0",
    "fd00::1%25lo", "[::1]:80", "[fc00::1]", "10.0.0.1:8080", "unknown", "_hidden", "for=", "for=10.0.0.1",
    'For="[::1]:80"', "by=10.0.0.2", "proto=https", '"', '\\"', ";", ",", ", ", " ", "\t", "%", "%25", "..", "/",
    "\\", "\x00", "\r\n", "\uffff", "é", "🦄", "2001:db8::1", "999.1.1.1", "1.2.3.4:99999", "[", "]", "010.0.0.1",
    "0x7f.1", "::", ":::",
]  # fmt: skip
fragment = st.sampled_from(FRAGMENTS)
hostile = st.one_of(
    st.lists(fragment, max_size=40).map("".join),
    st.lists(fragment, max_size=40).map("".join),
    st.text(max_size=200),
    st.sampled_from(
        ["", " ", "," * 5000, "1.2.3.4, " * 3000, "for=1.2.3.4," * 3000, '"' + "a" * 20000, "10.0.0.1," * 40]
    ),
)

public_v4 = (
    st.tuples(
        st.sampled_from([8, 23, 45, 81, 151, 198, 203, 212]),
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(1, 254),
    )
    .filter(lambda p: not (p[0] == 198 and p[1] in (18, 19)))
    .map(lambda p: ".".join(map(str, p)))
)
public_v6 = st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)).map(lambda t: f"2001:db8:{t[0]:x}::{t[1]:x}")
public_ip = st.one_of(public_v4, public_v6)
any_peer = st.one_of(
    public_ip,
    st.sampled_from(["127.0.0.1", "::1", "10.1.1.1", "::ffff:192.168.0.9", "fe80::1%eth0"]),
    hostile,
    st.none(),
)

TRICKS: list[Callable[[str], str]] = [
    lambda p: p.upper(),
    lambda p: p.replace("h", "H", 1),
    lambda p: f"{p};x",
    lambda p: f"{p}/..",
    lambda p: f"{p}/../admin",
    lambda p: f"/admin/..{p}",
    lambda p: f"/.{p}",
    lambda p: f"/{p}",
    lambda p: f"{p}//",
    lambda p: p.replace("/", "\\", 1),
    lambda p: re.sub("[a-z]", lambda m: f"%{ord(m.group(0)):x}", p, count=1),
    lambda p: f"{p}%2F..%2Fadmin",
    lambda p: f"{p}%00",
    lambda p: f"{p}\x00",
    lambda p: f"{p}\u200b",
    lambda p: p.replace("e", "\u0435", 1),  # Cyrillic e
    lambda p: f"{p}?x=/health",
    lambda p: f"{p}#/health",
    lambda p: f"{p}/",
    lambda p: f"{p}x",
    lambda p: f"http://evil{p}",
]
trick_path = st.tuples(
    st.sampled_from([*HEALTH_CHECK_PATHS, "/internal/jobs", "/admin"]),
    st.lists(st.sampled_from(TRICKS), max_size=4),
).map(lambda t: reduce(lambda p, op: op(p), t[1], t[0]))
EXACT = {*HEALTH_CHECK_PATHS, *(p + "/" for p in HEALTH_CHECK_PATHS)}

headers = st.dictionaries(
    st.sampled_from(["x-forwarded-for", "forwarded", "x-real-ip", "x-api-key", "authorization", "x-user"]),
    st.one_of(hostile, st.lists(hostile, max_size=4), st.just("Bearer " + "k" * 70_000)),
)


class RaisingId:
    @property
    def id(self) -> str:
        raise RuntimeError("getter")


users = st.one_of(
    st.none(),
    st.text(),
    st.integers(),
    st.booleans(),
    st.fixed_dictionaries(
        {"id": st.one_of(hostile, st.integers(), st.floats(), st.none(), st.dictionaries(st.text(), st.text()))}
    ),
    st.just(RaisingId()),
)

LIMITERS = [
    http_limiter(Policy(name="ip", limit=5, window=60))[0],
    http_limiter(Policy(name="ip", limit=5, window=60), trusted_proxies=["10.0.0.0/8", "loopback", "fc00::/7"])[0],
    http_limiter(Policy(name="fw", limit=5, window=60), trusted_proxies=["private"], proxy_header="forwarded")[0],
    http_limiter(Policy(name="u", limit=5, window=60, key_strategy="user"), on_missing_identity="shared")[0],
    http_limiter(Policy(name="k", limit=5, window=60, key_strategy="api_key"), exempt_private_ips=False)[0],
    http_limiter(Policy(name="c", limit=5, window=60, key_strategy="composite"), ipv6_prefix=128)[0],
    http_limiter(Policy(name="x", limit=5, window=60), key_extractor=lambda r: r.header("x-user"))[0],
]


@settings(max_examples=150, deadline=None)
@given(any_peer, headers, st.one_of(trick_path, hostile), users)
def test_hostile_requests_never_raise_and_keys_stay_bounded(
    peer: Optional[str], hdrs: dict[str, Any], path: str, user: Any
) -> None:
    for limiter in LIMITERS:
        req = view(ip=peer, headers=hdrs, path=path, user=user)
        explained = limiter.debug_key(req)
        d = limiter.check(req)
        assert isinstance(d.allowed, bool)
        assert all(isinstance(x, int) for x in (d.remaining, d.reset_at, d.retry_after))
        if explained.key is not None:
            assert len(explained.key) <= 320
        assert (explained.key is None) == (explained.exempt is not None)


@settings(max_examples=800, deadline=None)
@given(hostile)
def test_parsers_accept_anything(s: str) -> None:
    hop_address(s)
    forwarded_nodes(s)
    parse_ip(s)
    path_of(s)


@settings(max_examples=600, deadline=None)
@given(public_ip, st.one_of(trick_path, hostile), headers)
def test_a_path_is_exempt_only_when_it_is_exactly_an_exempt_path(peer: str, path: str, hdrs: dict[str, Any]) -> None:
    limiter = LIMITERS[0]
    e = limiter.debug_key(view(ip=peer, path=path, headers=hdrs)).exempt
    if e is not None:
        assert e == "path"
        assert path_of(path) in EXACT, path


PREFIX_LIMITER = http_limiter(exemptions=["/internal/*"], exempt_health_checks=False)[0]
CANONICAL = re.compile(r"(/[A-Za-z0-9\-._~!$&'()*+,=:@]+)+/?")


@settings(max_examples=600, deadline=None)
@given(trick_path)
def test_prefix_exemptions_need_a_canonical_rest(path: str) -> None:
    if PREFIX_LIMITER.debug_key(view(path=path)).exempt == "path":
        p = path_of(path)
        assert p == "/internal" or p.startswith("/internal/")
        assert CANONICAL.fullmatch(p), p
        assert ".." not in p.split("/") and "." not in p.split("/")


BEHIND_PROXY = http_limiter(trusted_proxies=["10.0.0.0/8"])[0]
BEHIND_FORWARDED = http_limiter(trusted_proxies=["10.0.0.0/8"], proxy_header="forwarded")[0]


@settings(max_examples=150, deadline=None)
@given(public_ip, headers)
def test_an_untrusted_public_peer_is_the_client_whatever_it_sends(peer: str, hdrs: dict[str, Any]) -> None:
    e = BEHIND_PROXY.debug_key(view(ip=peer, headers=hdrs))
    assert e.exempt is None
    a = parse_ip(peer)
    assert a is not None and e.client_ip == format_ip(a)
    assert e.key is not None and e.key.startswith("ip:")


@settings(max_examples=150, deadline=None)
@given(hostile, public_ip)
def test_behind_a_trusted_proxy_the_appended_address_is_the_client(spoofed: str, client: str) -> None:
    a = BEHIND_PROXY.debug_key(view(ip="10.0.0.2", headers={"x-forwarded-for": f"{spoofed}, {client}"}))
    assert a.exempt is None
    assert a.key == BEHIND_PROXY.debug_key(view(ip=client)).key
    # Forwarded: the appended element wins or (unbalanced quotes in the spoofed part) the proxy stands in, not exempt.
    node = f'"[{client}]"' if ":" in client else client
    b = BEHIND_FORWARDED.debug_key(view(ip="10.0.0.2", headers={"forwarded": [spoofed, f"for={node}"]}))
    assert b.exempt is None
    assert b.key in (BEHIND_FORWARDED.debug_key(view(ip=client)).key, "ip:10.0.0.2")


def _trusted(ip: str) -> bool:
    return ip.startswith("10.")


def _private(ip: str) -> bool:
    return (
        bool(re.match(r"(10\.|127\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)", ip))
        or ip == "::1"
        or bool(re.match(r"f[cd][0-9a-f]{0,2}:", ip))
    )


def _reference(header: str) -> bool:
    """The rule read independently: right to left, skip trusted, stop at the first untrusted; malformed: not exempt."""
    if header == "":
        return True  # no hops: the proxy itself (10.0.0.2, private) is the client
    hops = header.split(",")
    for i in range(len(hops) - 1, -1, -1):
        if len(hops) - i > 32:
            return False
        text = hop_address(hops[i])
        a = None if text is None else parse_ip(text)
        if a is None:
            return False
        ip = format_ip(a)
        if not _trusted(ip) or i == 0:
            return _private(ip)
    return False


@settings(max_examples=800, deadline=None)
@given(hostile)
def test_a_private_address_is_exempt_only_when_a_well_formed_chain_resolves_to_it(junk: str) -> None:
    e = BEHIND_PROXY.debug_key(view(ip="10.0.0.2", headers={"x-forwarded-for": junk}))
    assert (e.exempt == "private_ip") == _reference(junk), repr(junk)
