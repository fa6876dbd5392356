"""The limiter's request path through the HTTP rules: exemptions, key strategies, warnings, configuration errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest

from halt.core.errors import HaltConfigError
from halt.core.limiter import RateLimiter
from halt.core.types import Policy
from halt.http.headers import rate_limit_headers
from halt.http.request import RequestView
from halt.http.rules import HttpRules
from halt.http.warnings import HaltWarning, WarningCode
from halt.stores.memory import InMemoryStore
from tests.http.support import http_limiter, view
from tests.support import SPEC_DIR

ERRORS_MD = Path(SPEC_DIR).parent / "docs" / "errors.md"


def P(limit: float = 100, window: float = 60, **kw: Any) -> Policy:
    return Policy(limit=limit, window=window, **kw)


class TestCheckRequest:
    def test_limits_by_client_address(self) -> None:
        limiter, _, _ = http_limiter(P(2, name="api"))
        a = view(ip="203.0.113.7")
        assert limiter.check(a).remaining == 1
        assert limiter.check(a).remaining == 0
        d = limiter.check(a)
        assert not d.allowed and d.reason == "limit" and d.retry_after == 30
        assert limiter.check(view(ip="203.0.113.8")).allowed
        assert not limiter.check("ip:203.0.113.7").allowed  # the request's key is the string key

    def test_exempt_requests_never_reach_the_store(self) -> None:
        limiter, _, _ = http_limiter(P(1, name="api"))
        for _ in range(5):
            d = limiter.check(view(path="/healthz"))
            assert d.allowed and d.reason == "exempt" and d.policy == "api"
            assert limiter.check(view(ip="10.0.0.7")).reason == "exempt"
        assert cast(InMemoryStore, limiter.store).size() == 0
        assert limiter.stats().total_checks == 0
        assert rate_limit_headers(limiter.check(view(path="/ping"))) == {}

    def test_ipv6_clients_are_keyed_by_their_64(self) -> None:
        limiter, _, _ = http_limiter(P(2))
        assert limiter.check(view(ip="2001:db8:1:2::1")).allowed
        assert limiter.check(view(ip="2001:db8:1:2::2")).allowed
        assert not limiter.check(view(ip="2001:db8:1:2:ffff:ffff:ffff:ffff")).allowed
        assert limiter.check(view(ip="2001:db8:1:3::1")).allowed

    def test_skip_exempts_and_a_raising_skip_counts_as_false_and_warns_once(self) -> None:
        def skip(req: RequestView) -> bool:
            if req.header("x-boom"):
                raise RuntimeError("boom")
            return req.header("x-internal") == "yes"

        limiter, _, warnings = http_limiter(P(1), skip=skip)
        assert limiter.check(view(headers={"x-internal": "yes"})).reason == "exempt"
        assert limiter.check(view(headers={"x-boom": "1"})).allowed
        assert not limiter.check(view(headers={"x-boom": "1"})).allowed
        assert [w.code for w in warnings] == [WarningCode.CALLBACK_FAILED]
        assert "skip raised (boom)" in warnings[0].message

    def test_peek_does_not_consume_and_reset_forgets_the_request_s_key(self) -> None:
        limiter, _, _ = http_limiter(P(2))
        r = view(ip="198.51.100.4")
        limiter.check(r)
        assert limiter.peek(r).remaining == 1
        assert limiter.peek(r).remaining == 1
        limiter.check(r)
        assert not limiter.check(r).allowed
        limiter.reset(r)
        assert limiter.check(r).remaining == 1
        assert limiter.peek(view(path="/health")).reason == "exempt"

    async def test_acheck_takes_requests_too(self) -> None:
        limiter, _, _ = http_limiter(P(1))
        assert (await limiter.acheck(view())).allowed
        assert (await limiter.acheck(view())).reason == "limit"
        assert (await limiter.acheck(view(path="/health"))).reason == "exempt"


class TestKeyStrategies:
    def test_user_by_id_and_anonymous_by_address(self) -> None:
        limiter, _, _ = http_limiter(P(1, key_strategy="user"))
        assert limiter.check(view(ip="203.0.113.1", user={"id": 7})).allowed
        assert not limiter.check(view(ip="203.0.113.2", user={"id": 7})).allowed  # same user, other address
        assert limiter.check(view(ip="203.0.113.1")).allowed  # anonymous: by address
        assert limiter.debug_key(view(user={"id": 7})).key == "user:7"

        class User:
            id = 42

        assert limiter.debug_key(view(user=User())).key == "user:42"
        assert limiter.debug_key(view(user="ada")).key == "user:ada"
        assert limiter.debug_key(view(user={"id": 4.0})).key == "user:4"  # as JavaScript writes the number
        assert limiter.debug_key(view(user={"id": True})).key == "ip:203.0.113.7"  # a bool is no identity

    def test_a_user_id_resolver_and_a_raising_one(self) -> None:
        def user_id(req: RequestView) -> Any:
            h = req.header("x-user")
            if h == "boom":
                raise RuntimeError("no session store")
            return h

        limiter, _, warnings = http_limiter(P(5, key_strategy="user"), user_id=user_id)
        assert limiter.debug_key(view(headers={"x-user": "u-9"})).key == "user:u-9"
        assert limiter.debug_key(view(headers={"x-user": "boom"})).key == "ip:203.0.113.7"
        assert warnings[0].code == "HALT_CALLBACK_FAILED"

    def test_on_missing_identity_shared_and_allow(self) -> None:
        shared, _, _ = http_limiter(P(1, key_strategy="user"), on_missing_identity="shared")
        assert shared.check(view(ip="203.0.113.1")).allowed
        assert not shared.check(view(ip="203.0.113.2")).allowed
        allow, _, _ = http_limiter(P(1, key_strategy="user"), on_missing_identity="allow")
        assert allow.check(view()).reason == "exempt"
        assert allow.check(view()).reason == "exempt"
        assert allow.check(view(user={"id": 1})).allowed
        assert not allow.check(view(user={"id": 1})).allowed

    def test_api_key_never_appears_raw(self) -> None:
        raw = "sk_live_9f8e7d6c5b4a"
        limiter, _, _ = http_limiter(P(5, key_strategy="api_key"))
        explained = limiter.debug_key(view(headers={"x-api-key": raw}))
        assert explained.key is not None and re.fullmatch(r"apikey:[0-9a-f]{32}", explained.key)
        assert raw not in repr(vars(explained) if hasattr(explained, "__dict__") else explained)
        assert raw not in " ".join(explained.steps)
        # Bearer and X-API-Key are the same identity; another key is another identity.
        assert limiter.debug_key(view(headers={"authorization": f"Bearer {raw}"})).key == explained.key
        assert limiter.debug_key(view(headers={"authorization": f"bEaReR\t {raw} "})).key == explained.key
        assert limiter.debug_key(view(headers={"x-api-key": raw + "x"})).key != explained.key

    def test_api_key_default_secret_is_per_process_and_a_configured_one_is_stable(self) -> None:
        a = http_limiter(P(5, key_strategy="api_key"))[0]
        b = http_limiter(P(5, key_strategy="api_key"))[0]
        r = view(headers={"x-api-key": "k1"})
        assert a.debug_key(r).key == b.debug_key(r).key
        s1 = http_limiter(P(5, key_strategy="api_key"), api_key_secret="a" * 32)[0]
        s2 = http_limiter(P(5, key_strategy="api_key"), api_key_secret=b"a" * 32)[0]
        assert s1.debug_key(r).key == s2.debug_key(r).key != a.debug_key(r).key

    def test_api_key_on_a_shared_store(self) -> None:
        with pytest.raises(HaltConfigError) as e:
            HttpRules({}, shared_store=True).validate_strategy("k", "api_key")
        assert e.value.code == "HALT_API_KEY_SECRET_REQUIRED"
        assert "api_key_secret=os.environ['HALT_API_KEY_SECRET']" in str(e.value)
        HttpRules({"api_key_secret": "x" * 16}, shared_store=True).validate_strategy("k", "api_key")
        # A policy resolved per request cannot be checked up front: it warns once instead.
        warnings: list[HaltWarning] = []
        rules = HttpRules({"on_warning": warnings.append}, shared_store=True)
        key = rules.key("api_key", view(headers={"x-api-key": "k"}), None)
        assert key is not None and key.startswith("apikey:")
        assert [w.code for w in warnings] == ["HALT_API_KEY_SECRET_NOT_SHARED"]

    def test_custom_key_extractor(self) -> None:
        def extract(req: RequestView) -> Any:
            t = req.header("x-tenant")
            if t == "boom":
                raise RuntimeError("lookup failed")
            return t and f"tenant:{t}"

        limiter, _, warnings = http_limiter(P(5), key_extractor=extract)
        explained = limiter.debug_key(view(headers={"x-tenant": "acme"}))
        assert explained.key == "tenant:acme" and explained.strategy == "custom"
        assert limiter.debug_key(view()).key == "ip:203.0.113.7"
        assert limiter.debug_key(view(headers={"x-tenant": "boom"})).key == "ip:203.0.113.7"
        key = limiter.debug_key(view(headers={"x-tenant": "a b"})).key
        assert key is not None and re.fullmatch(r"custom#[0-9a-f]{32}", key)
        assert [w.code for w in warnings] == ["HALT_CALLBACK_FAILED"]

    def test_custom_strategy_without_extractor_is_a_configuration_error(self) -> None:
        with pytest.raises(HaltConfigError) as e:
            RateLimiter(policy=P(5, key_strategy="custom"))
        assert e.value.code == "HALT_MISSING_KEY_EXTRACTOR"


class TestWarnings:
    def test_unconfigured_proxy_warns_once_loudly_with_the_fix(self) -> None:
        limiter, _, warnings = http_limiter()
        for i in range(3):
            assert limiter.check(view(ip="10.0.3.4", headers={"x-forwarded-for": f"203.0.113.{i}"})).reason == "exempt"
        assert len(warnings) == 1 and warnings[0].code == "HALT_UNCONFIGURED_PROXY"
        assert re.search(r"NOTHING IS LIMITED.*trusted_proxies=\['10\.0\.3\.4'\]", warnings[0].message)

    def test_forwarded_too_the_other_consequence_and_silencing(self) -> None:
        a, _, aw = http_limiter(exempt_private_ips=False)
        a.check(view(ip="192.168.0.2", headers={"forwarded": "for=203.0.113.1"}))
        assert re.search(r"carries Forwarded.*every client shares that one limit", aw[0].message)
        off, _, ow = http_limiter(validations={"HALT_UNCONFIGURED_PROXY": False})
        off.check(view(ip="10.0.0.1", headers={"x-forwarded-for": "1.1.1.1"}))
        none, _, nw = http_limiter(validations=False)
        none.check(view(ip="10.0.0.1", headers={"x-forwarded-for": "1.1.1.1"}))
        assert ow == [] and nw == []

    def test_no_warning_for_public_peers_or_with_trusted_proxies(self) -> None:
        a, _, aw = http_limiter()
        a.check(view(ip="203.0.113.5", headers={"x-forwarded-for": "1.1.1.1"}))
        b, _, bw = http_limiter(trusted_proxies=["10.0.0.0/8"])
        b.check(view(ip="10.0.0.1", headers={"x-forwarded-for": "1.1.1.1"}))
        b.check(view(ip="192.168.0.1", headers={"x-forwarded-for": "1.1.1.1"}))
        assert aw == [] and bw == []

    def test_the_detection_samples_after_1024_private_requests(self) -> None:
        limiter, _, warnings = http_limiter()
        for _ in range(1100):
            limiter.check(view(ip="10.0.0.9"))
        limiter.check(view(ip="10.0.0.9", headers={"x-forwarded-for": "1.1.1.1"}))  # request 1101: not sampled
        assert warnings == []
        for _ in range(63):
            limiter.check(view(ip="10.0.0.9", headers={"x-forwarded-for": "1.1.1.1"}))
        assert [w.code for w in warnings] == ["HALT_UNCONFIGURED_PROXY"]

    def test_requests_without_an_address_share_ip_unknown_and_warn_once(self) -> None:
        limiter, _, warnings = http_limiter(P(1))
        assert limiter.check(view(ip=None)).allowed
        assert not limiter.check(view(ip=None)).allowed
        assert limiter.debug_key(view(ip=None)).key == "ip:unknown"
        assert [w.code for w in warnings] == ["HALT_NO_CLIENT_ADDRESS"]

    def test_a_raising_on_warning_does_not_break_the_request(self) -> None:
        def boom(w: HaltWarning) -> None:
            raise RuntimeError("logger down")

        limiter = RateLimiter(policy=P(1), on_warning=boom)
        assert limiter.check(view(ip=None)).allowed

    def test_the_default_sink_is_the_halt_logger(self, caplog: pytest.LogCaptureFixture) -> None:
        limiter = RateLimiter(policy=P(1))
        with caplog.at_level("WARNING", logger="halt"):
            limiter.check(view(ip=None))
        assert "[halt] HALT_NO_CLIENT_ADDRESS:" in caplog.text


CONFIG_ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    ("a trusted proxy that is no address", {"trusted_proxies": ["10.0.0.0/8", "proxy.internal"]},
     "HALT_INVALID_TRUSTED_PROXY", r"'proxy\.internal'.*'10\.0\.0\.0/8'"),
    ("trusted_proxies not a list", {"trusted_proxies": "10.0.0.0/8"}, "HALT_INVALID_TRUSTED_PROXY", "must be a list"),
    ("trusting every address", {"trusted_proxies": ["0.0.0.0/0"]}, "HALT_TRUST_ALL_PROXIES",
     "any client could name its own address"),
    ("trusting every IPv6 address", {"trusted_proxies": ["::/0"]}, "HALT_TRUST_ALL_PROXIES", "trusts every address"),
    ("a bad proxy header", {"proxy_header": "x forwarded"}, "HALT_INVALID_PROXY_HEADER", "header name"),
    ("a proxy header with a newline", {"proxy_header": "x-real-ip\n"}, "HALT_INVALID_PROXY_HEADER", "header name"),
    ("a non-canonical exempt path", {"exemptions": ["/a/../b"]}, "HALT_INVALID_EXEMPTION", "not canonical"),
    ("an exemption that is neither", {"exemptions": ["health"]}, "HALT_INVALID_EXEMPTION", "neither a path"),
    ("an IPv6 prefix of 0", {"ipv6_prefix": 0}, "HALT_INVALID_IPV6_PREFIX", "1 to 128"),
    ("an IPv6 prefix of 64.5", {"ipv6_prefix": 64.5}, "HALT_INVALID_IPV6_PREFIX", "whole number"),
    ("an IPv6 prefix that is a bool", {"ipv6_prefix": True}, "HALT_INVALID_IPV6_PREFIX", "whole number"),
    ("an unknown on_missing_identity", {"on_missing_identity": "reject"}, "HALT_INVALID_ON_MISSING_IDENTITY",
     "'ip', 'shared' or 'allow'"),
    ("a short api_key_secret", {"api_key_secret": "short"}, "HALT_INVALID_API_KEY_SECRET", "at least 16 bytes"),
    ("skip not a function", {"skip": True}, "HALT_INVALID_CALLBACK", "skip must be a function"),
    ("key_extractor not a function", {"key_extractor": "x-tenant"}, "HALT_INVALID_CALLBACK",
     "key_extractor must be a function"),
    ("exempt_private_ips not a bool", {"exempt_private_ips": "no"}, "HALT_INVALID_OPTIONS", "True or False"),
    ("an unknown validation", {"validations": {"HALT_NOPE": False}}, "HALT_INVALID_VALIDATIONS",
     "unknown warning code 'HALT_NOPE'"),
    ("on_warning not a function", {"on_warning": "console"}, "HALT_INVALID_CALLBACK", "on_warning must be a function"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "options", "code", "message"), CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
def test_configuration_errors(what: str, options: dict[str, Any], code: str, message: str) -> None:
    with pytest.raises(HaltConfigError) as e:
        RateLimiter(policy=P(1, 1), **options)
    assert e.value.code == code
    assert re.search(message, str(e.value)), str(e.value)
    assert e.value.docs == f"docs/errors.md#{code.lower()}"


def test_every_code_raised_or_warned_here_is_documented() -> None:
    documented = set(re.findall(r"^### (halt_[a-z0-9_]+)", ERRORS_MD.read_text(), flags=re.M))
    here = {c[2].lower() for c in CONFIG_ERRORS}
    here |= {getattr(WarningCode, n).lower() for n in dir(WarningCode) if n.isupper()}
    here |= {"halt_invalid_limiter", "halt_invalid_header_format", "halt_missing_key_extractor"}
    here |= {"halt_api_key_secret_required"}
    assert here <= documented, here - documented


def test_every_documented_form_is_accepted() -> None:
    limiter, _, _ = http_limiter(
        trusted_proxies=["loopback", "private", "2001:db8::/32", "198.51.100.7"],
        exemptions=["/status", "/internal/*", "203.0.113.0/24", "::1"],
    )
    assert limiter.debug_key(view(path="/internal/x")).exempt == "path"
    assert limiter.debug_key(view(ip="203.0.113.9")).exempt == "listed_ip"
