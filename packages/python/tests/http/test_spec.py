"""Runs every case of spec/http through the real RateLimiter and header functions, as the TypeScript tests do."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from halt.http.headers import more_restrictive, rate_limit_headers, rejection_body, rejection_status
from halt.http.ip import cidr_contains, format_ip, parse_cidr, parse_ip
from halt.stores.memory import InMemoryStore
from tests.http.support import http_limiter, load_spec, spec_limiter, spec_view, to_decision, view

REQUEST_FILES = ("client-ip.json", "keys.json", "exemptions.json")


def _request_cases() -> list[Any]:
    return [
        pytest.param(case, id=f"{name}: {case['name']}") for name in REQUEST_FILES for case in load_spec(name)["cases"]
    ]


def test_every_request_file_has_cases() -> None:
    for name in REQUEST_FILES:
        assert len(load_spec(name)["cases"]) > 5, name


@pytest.mark.parametrize("case", _request_cases())
def test_request_case(case: dict[str, Any]) -> None:
    limiter = spec_limiter(case)
    req = spec_view(case)
    explained = limiter.debug_key(req)
    expect = case["expect"]
    if "client_ip" in expect:
        assert explained.client_ip == expect["client_ip"], "client_ip"
    if "key" in expect:
        assert explained.key == expect["key"], "key"
    if "exempt" in expect:
        assert explained.exempt == expect["exempt"], "exempt"
    # check() agrees with debug_key(): exempt requests never reach the store, others are counted under the key.
    d = limiter.check(req)
    if explained.exempt is not None:
        assert d.allowed and d.reason == "exempt"
        assert limiter.stats().total_checks == 0
        assert cast(InMemoryStore, limiter.store).size() == 0
    else:
        assert d.allowed and d.remaining == 99
        assert explained.key is not None
        assert limiter.check(explained.key).remaining == 98


ADDRESSES = load_spec("addresses.json")


@pytest.mark.parametrize("p", ADDRESSES["parse"], ids=lambda p: repr(p["input"]))
def test_parse(p: dict[str, Any]) -> None:
    a = parse_ip(p["input"])
    assert (None if a is None else format_ip(a)) == p["canonical"]


@pytest.mark.parametrize("c", ADDRESSES["cidr"], ids=lambda c: c["cidr"])
def test_cidr(c: dict[str, Any]) -> None:
    r = parse_cidr(c["cidr"])
    assert (None if r is None else r.text) == c["canonical"]
    for a in c.get("contains", []):
        ip = parse_ip(a)
        assert r is not None and ip is not None and cidr_contains(r, ip), f"{a} in {c['cidr']}"
    for a in c.get("excludes", []):
        ip = parse_ip(a)
        assert r is not None and ip is not None and not cidr_contains(r, ip), f"{a} not in {c['cidr']}"


@pytest.mark.parametrize("k", ADDRESSES["ipv6_prefix_keys"], ids=lambda k: f"{k['address']}/{k['bits']}")
def test_ipv6_prefix_key(k: dict[str, Any]) -> None:
    limiter, _, _ = http_limiter(ipv6_prefix=k["bits"])
    assert limiter.debug_key(view(ip=k["address"], path="/")).key == k["key"]


@pytest.mark.parametrize("c", load_spec("headers.json")["cases"], ids=lambda c: c["name"])
def test_headers(c: dict[str, Any]) -> None:
    d = to_decision(c["decision"])
    assert rate_limit_headers(d, c["format"], c["window"], c["now_ms"]) == c["expect"]["headers"]
    if c["expect"]["status"] is None:
        assert d.allowed
    else:
        assert rejection_status(d) == c["expect"]["status"]
        assert rejection_body(d) == c["expect"]["body"]
        json.loads(rejection_body(d))


@pytest.mark.parametrize("c", load_spec("restrictive.json")["cases"], ids=lambda c: c["name"])
def test_restrictive(c: dict[str, Any]) -> None:
    second_wins = more_restrictive(to_decision(c["second"]), to_decision(c["first"]))
    assert ("second" if second_wins else "first") == c["describes"]
