#!/usr/bin/env python3
"""Writes the spec/http case files (python3 spec/http/generate.py), or checks them (--check).

The cases are hand-written expectations; only the derived values come from an independent reference:
Python's hashlib/hmac for hashed identities and API keys, and its ipaddress module for canonical
IPv6 text, prefix masks and CIDR membership. Edit a case here, regenerate, and say why in the commit.
"""
import hashlib
import hmac
import ipaddress
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = {}

SECRET = "0123456789abcdef0123456789abcdef"
def apikey(k): return "apikey:" + hmac.new(SECRET.encode(), k.encode('utf-8'), hashlib.sha256).hexdigest()[:32]
def hashed(prefix, s): return prefix + "#" + hashlib.sha256(s.encode('utf-8')).hexdigest()[:32]
def v6key(a, p=64):
    n = ipaddress.ip_network(f"{a}/{p}", strict=False)
    return f"ip:{n.network_address.compressed}/{p}" if p < 128 else f"ip:{ipaddress.ip_address(a).compressed}"

def req(peer="203.0.113.7", path="/api/items", headers=None, user=None, method="GET"):
    r = {"peer": peer, "method": method, "path": path, "headers": headers or {}}
    if user is not None: r["user"] = user
    return r

def case(name, request, expect, config=None, policy=None, description=None):
    c = {"name": name}
    if description: c["description"] = description
    if config: c["config"] = config
    if policy: c["policy"] = policy
    c["request"] = request
    c["expect"] = expect
    return c

def out(client_ip, key, exempt=None):
    return {"client_ip": client_ip, "key": None if exempt else key, "exempt": exempt}

T10 = {"trusted_proxies": ["10.0.0.0/8"]}
many = ", ".join(["203.0.113.7"] + ["10.0.0.%d" % i for i in range(1, 34)])

client_ip = [
    case("no trusted proxy: the peer is the client", req(headers={"x-forwarded-for": "198.51.100.1"}), out("203.0.113.7", "ip:203.0.113.7"),
         description="X-Forwarded-For is never read unless the peer is a trusted proxy."),
    case("an untrusted peer's X-Forwarded-For is ignored", req(headers={"x-forwarded-for": "10.0.0.1"}), out("203.0.113.7", "ip:203.0.113.7"), config=T10,
         description="A client claiming a private (exempt) address gains nothing."),
    case("trusted peer: the rightmost untrusted hop is the client", req(peer="10.0.0.2", headers={"x-forwarded-for": "198.51.100.9, 203.0.113.7"}),
         out("203.0.113.7", "ip:203.0.113.7"), config=T10, description="The leftmost entry is whatever the client sent; only the hop the proxy appended is believed."),
    case("trusted hops are skipped right to left", req(peer="10.0.0.2", headers={"x-forwarded-for": "203.0.113.7, 10.1.1.1, 10.2.2.2"}),
         out("203.0.113.7", "ip:203.0.113.7"), config=T10),
    case("every hop trusted: the leftmost is the client", req(peer="10.0.0.2", headers={"x-forwarded-for": "10.9.9.9, 10.1.1.1"}),
         out("10.9.9.9", "ip:10.9.9.9", "private_ip"), config=T10),
    case("trusted peer without the header is the client", req(peer="10.0.0.2"), out("10.0.0.2", "ip:10.0.0.2", "private_ip"), config=T10),
    case("an empty header counts as absent", req(peer="10.0.0.2", headers={"x-forwarded-for": ""}), out("10.0.0.2", "ip:10.0.0.2", "private_ip"), config=T10),
    case("a malformed hop stops the walk at the nearest trusted hop, which is not exempt",
         req(peer="10.0.0.2", headers={"x-forwarded-for": "203.0.113.7, bogus, 10.1.1.1"}), out("10.1.1.1", "ip:10.1.1.1"), config=T10,
         description="A trusted proxy never writes garbage; the chain cannot be believed past it, and a private stand-in must not exempt the request."),
    case("a blank header is malformed", req(peer="10.0.0.2", headers={"x-forwarded-for": "  "}), out("10.0.0.2", "ip:10.0.0.2"), config=T10),
    case("an empty hop is malformed", req(peer="10.0.0.2", headers={"x-forwarded-for": "203.0.113.7,,10.1.1.1"}), out("10.1.1.1", "ip:10.1.1.1"), config=T10),
    case("a leading zero makes a hop malformed", req(peer="10.0.0.2", headers={"x-forwarded-for": "203.000.113.7"}), out("10.0.0.2", "ip:10.0.0.2"), config=T10,
         description="'010.0.0.1' is octal to some parsers and decimal to others: refused."),
    case("more than 32 trusted hops are malformed", req(peer="10.9.9.9", headers={"x-forwarded-for": many}), out("10.0.0.2", "ip:10.0.0.2"), config=T10,
         description="At most 32 hops are read; the 32nd from the right (10.0.0.2) was trusted with more to come, so it stands in, not exempt."),
    case("a port on an IPv4 hop is dropped", req(peer="10.0.0.2", headers={"x-forwarded-for": "203.0.113.7:4711"}), out("203.0.113.7", "ip:203.0.113.7"), config=T10),
    case("a bracketed IPv6 hop with a port", req(peer="10.0.0.2", headers={"x-forwarded-for": "[2001:db8::7]:4711"}), out("2001:db8::7", v6key("2001:db8::7")), config=T10),
    case("an IPv4-mapped hop is IPv4", req(peer="10.0.0.2", headers={"x-forwarded-for": "::ffff:203.0.113.7"}), out("203.0.113.7", "ip:203.0.113.7"), config=T10),
    case("several header lines are one list", req(peer="10.0.0.2", headers={"x-forwarded-for": ["198.51.100.1", "203.0.113.7"]}), out("203.0.113.7", "ip:203.0.113.7"), config=T10,
         description="Header lines are joined with ', ' in order, as HTTP defines for list headers."),
    case("an IPv4-mapped peer is IPv4", req(peer="::ffff:203.0.113.7"), out("203.0.113.7", "ip:203.0.113.7")),
    case("IPv6 trusted proxies", req(peer="2001:db8:ffff::1", headers={"x-forwarded-for": "2001:DB8:1:2:0:0:0:99"}),
         out("2001:db8:1:2::99", v6key("2001:db8:1:2::99")), config={"trusted_proxies": ["2001:db8:ffff::/48"]}),
    case("'loopback' names 127.0.0.0/8 and ::1", req(peer="127.0.0.1", headers={"x-forwarded-for": "203.0.113.7"}), out("203.0.113.7", "ip:203.0.113.7"),
         config={"trusted_proxies": ["loopback"]}),
    case("'private' names every private and loopback range", req(peer="fd00::5", headers={"x-forwarded-for": "172.20.0.4, 203.0.113.7"}), out("203.0.113.7", "ip:203.0.113.7"),
         config={"trusted_proxies": ["private"]}),
    case("a single trusted address", req(peer="198.51.100.20", headers={"x-forwarded-for": "203.0.113.7"}), out("203.0.113.7", "ip:203.0.113.7"),
         config={"trusted_proxies": ["198.51.100.20"]}),
    case("RFC 7239 Forwarded, right to left", req(peer="10.0.0.2", headers={"forwarded": 'for=198.51.100.1;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.2'}),
         out("2001:db8:cafe::17", v6key("2001:db8:cafe::17")), config={**T10, "proxy_header": "forwarded"}),
    case("Forwarded: trusted elements are skipped", req(peer="10.0.0.2", headers={"forwarded": "for=203.0.113.7, for=10.3.3.3;proto=http"}),
         out("203.0.113.7", "ip:203.0.113.7"), config={**T10, "proxy_header": "forwarded"}),
    case("Forwarded: names are case-insensitive, several lines are one list", req(peer="10.0.0.2", headers={"forwarded": ["For=198.51.100.1", "FOR=203.0.113.7"]}),
         out("203.0.113.7", "ip:203.0.113.7"), config={**T10, "proxy_header": "forwarded"}),
    case("Forwarded is not read when the proxy header is X-Forwarded-For", req(peer="10.0.0.2", headers={"forwarded": "for=203.0.113.9"}),
         out("10.0.0.2", "ip:10.0.0.2", "private_ip"), config=T10,
         description="Only the header your proxy writes is read: a proxy that appends to X-Forwarded-For passes a client's Forwarded through untouched."),
    case("Forwarded: for=unknown stops the walk", req(peer="10.0.0.2", headers={"forwarded": "for=unknown, for=10.1.1.1"}), out("10.1.1.1", "ip:10.1.1.1"),
         config={**T10, "proxy_header": "forwarded"}),
    case("Forwarded: an obfuscated node stops the walk", req(peer="10.0.0.2", headers={"forwarded": "for=_hidden"}), out("10.0.0.2", "ip:10.0.0.2"),
         config={**T10, "proxy_header": "forwarded"}),
    case("Forwarded: an element with two for= is malformed", req(peer="10.0.0.2", headers={"forwarded": "for=203.0.113.7;for=198.51.100.1"}), out("10.0.0.2", "ip:10.0.0.2"),
         config={**T10, "proxy_header": "forwarded"}),
    case("Forwarded: an unterminated quote makes the whole value malformed", req(peer="10.0.0.2", headers={"forwarded": 'for=198.51.100.1, for="203.0.113.7'}),
         out("10.0.0.2", "ip:10.0.0.2"), config={**T10, "proxy_header": "forwarded"}),
    case("another list header (x-real-ip)", req(peer="10.0.0.2", headers={"x-real-ip": "203.0.113.7", "x-forwarded-for": "198.51.100.1"}), out("203.0.113.7", "ip:203.0.113.7"),
         config={**T10, "proxy_header": "x-real-ip"}),
    case("an IPv6 zone id is dropped", req(peer="fe80::1%eth0"), out("fe80::1", v6key("fe80::1"))),
    case("IPv6 text is canonical (RFC 5952)", req(peer="2001:0DB8:0000:0000:0001:0000:0000:0001"), out("2001:db8::1:0:0:1", v6key("2001:db8::1:0:0:1"))),
    case("no peer address: one shared key", req(peer=None), out(None, "ip:unknown")),
    case("a peer that is not an IP address: one shared key", req(peer="unix:/var/run/app.sock"), out(None, "ip:unknown")),
]

K = {"api_key_secret": SECRET}
long_id = "u" * 257
keys = [
    case("ip: IPv4 clients by address", req(), out("203.0.113.7", "ip:203.0.113.7")),
    case("ip: IPv6 clients by their /64", req(peer="2001:db8:1:2:aaaa:bbbb:cccc:dddd"), out("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "ip:2001:db8:1:2::/64"),
         description="One host controls a whole /64; keying by address would let it rotate through 2^64 fresh limits."),
    case("ip: ipv6_prefix 48", req(peer="2001:db8:1:2::1"), out("2001:db8:1:2::1", "ip:2001:db8:1::/48"), config={"ipv6_prefix": 48}),
    case("ip: ipv6_prefix 128 keys by address", req(peer="2001:db8:1:2::1"), out("2001:db8:1:2::1", "ip:2001:db8:1:2::1"), config={"ipv6_prefix": 128}),
    case("user: from user.id", req(user={"id": "42", "plan": "pro"}), out("203.0.113.7", "user:42"), policy={"key_strategy": "user"}),
    case("user: a numeric id", req(user={"id": 42}), out("203.0.113.7", "user:42"), policy={"key_strategy": "user"}),
    case("user: the user itself when it is a string", req(user="ada"), out("203.0.113.7", "user:ada"), policy={"key_strategy": "user"}),
    case("user: anonymous falls back to the client address", req(), out("203.0.113.7", "ip:203.0.113.7"), policy={"key_strategy": "user"}),
    case("user: an empty id is no identity", req(user={"id": ""}), out("203.0.113.7", "ip:203.0.113.7"), policy={"key_strategy": "user"}),
    case("user: on_missing_identity shared", req(), out("203.0.113.7", "anonymous"), policy={"key_strategy": "user"}, config={"on_missing_identity": "shared"}),
    case("user: on_missing_identity allow", req(), out("203.0.113.7", None, "no_identity"), policy={"key_strategy": "user"}, config={"on_missing_identity": "allow"}),
    case("user: an id with a space is hashed", req(user={"id": "Ada Lovelace"}), out("203.0.113.7", hashed("user", "Ada Lovelace")), policy={"key_strategy": "user"},
         description="Identities that are not short printable ASCII (no space, no '|') become prefix#sha256[:16 bytes]."),
    case("user: a non-ASCII id is hashed", req(user={"id": "jos\u00e9"}), out("203.0.113.7", hashed("user", "jos\u00e9")), policy={"key_strategy": "user"}),
    case("user: an id over 256 characters is hashed", req(user={"id": long_id}), out("203.0.113.7", hashed("user", long_id)), policy={"key_strategy": "user"}),
    case("user: no identity and no address", req(peer=None), out(None, "ip:unknown"), policy={"key_strategy": "user"}),
    case("composite: user and client address", req(user={"id": "42"}), out("203.0.113.7", "user:42|ip:203.0.113.7"), policy={"key_strategy": "composite"}),
    case("composite: IPv6 by its /64", req(peer="2001:db8::9", user={"id": "42"}), out("2001:db8::9", "user:42|ip:2001:db8::/64"), policy={"key_strategy": "composite"}),
    case("composite: anonymous falls back to the client address", req(), out("203.0.113.7", "ip:203.0.113.7"), policy={"key_strategy": "composite"}),
    case("api_key: X-API-Key, as a keyed hash", req(headers={"x-api-key": "sk_live_51Hx"}), out("203.0.113.7", apikey("sk_live_51Hx")), policy={"key_strategy": "api_key"}, config=K,
         description="apikey: + first 16 bytes of HMAC-SHA-256(secret, UTF-8 key), hex. The raw key is never stored."),
    case("api_key: Authorization Bearer is the same identity", req(headers={"authorization": "Bearer sk_live_51Hx"}), out("203.0.113.7", apikey("sk_live_51Hx")),
         policy={"key_strategy": "api_key"}, config=K),
    case("api_key: the scheme is case-insensitive, whitespace trimmed", req(headers={"authorization": "bearer   sk_live_51Hx  "}), out("203.0.113.7", apikey("sk_live_51Hx")),
         policy={"key_strategy": "api_key"}, config=K),
    case("api_key: X-API-Key wins over Authorization", req(headers={"x-api-key": "key-a", "authorization": "Bearer key-b"}), out("203.0.113.7", apikey("key-a")),
         policy={"key_strategy": "api_key"}, config=K),
    case("api_key: Basic credentials are not an API key", req(headers={"authorization": "Basic YWRhOnB3"}), out("203.0.113.7", "ip:203.0.113.7"),
         policy={"key_strategy": "api_key"}, config=K),
    case("api_key: a key over 4096 characters is no identity", req(headers={"x-api-key": "k" * 4097}), out("203.0.113.7", "ip:203.0.113.7"),
         policy={"key_strategy": "api_key"}, config=K, description="Bounded work per request; the client is limited by address instead."),
    case("api_key: a 4096-character key is hashed", req(headers={"x-api-key": "k" * 4096}), out("203.0.113.7", apikey("k" * 4096)), policy={"key_strategy": "api_key"}, config=K),
    case("api_key: a non-ASCII key is hashed as UTF-8", req(headers={"x-api-key": "cl\u00e9"}), out("203.0.113.7", apikey("cl\u00e9")), policy={"key_strategy": "api_key"}, config=K),
    case("api_key: no key falls back to the client address", req(), out("203.0.113.7", "ip:203.0.113.7"), policy={"key_strategy": "api_key"}, config=K),
]

def ex(path, exempt, config=None, peer="203.0.113.7", name=None, description=None, headers=None):
    return case(name or f"{path} {'is exempt' if exempt else 'is limited'}", req(peer=peer, path=path, headers=headers),
                {"exempt": exempt}, config=config, description=description)

P = "path"
exemptions = [
    ex("/health", P), ex("/ping", P), ex("/ready", P), ex("/healthz", P), ex("/livez", P),
    ex("/health/", P, name="one trailing slash is allowed"),
    ex("/health?verbose=1", P, name="the query string is ignored"),
    ex("/healthz", None, config={"exempt_health_checks": False}, name="exempt_health_checks false"),
    ex("/HEALTH", None, name="matching is case-sensitive", description="Case-sensitive routers (Fastify, Hono, Next) route /HEALTH elsewhere."),
    ex("/HEALTH;x", None, name="/HEALTH;x is limited"),
    ex("/health;x", None, name="';' parameters are never exempt", description="Some servers strip ;params, others route them elsewhere."),
    ex("/healthz/../admin", None, name="dot segments are never exempt (healthz/../admin)"),
    ex("/admin/../health", None, name="dot segments are never exempt (admin/../health)", description="A catch-all /admin/* route would serve it unlimited."),
    ex("/./health", None), ex("//health", None), ex("/health//", None),
    ex("/%68ealth", None, name="percent escapes are never exempt"),
    ex("/health%2F..%2Fadmin", None, name="encoded slashes are never exempt"),
    ex("/health%2e", None),
    ex("/health\\..\\admin", None, name="backslashes are never exempt"),
    ex("/health/db", None, name="exact paths only"),
    ex("/healthcheck", None, name="no prefix match on default paths"),
    ex("health", None, name="a path must start with '/'"),
    ex("/status", P, config={"exemptions": ["/status"]}, name="a custom path"),
    ex("/internal", P, config={"exemptions": ["/internal/*"]}, name="a prefix pattern covers its root"),
    ex("/internal/jobs/7", P, config={"exemptions": ["/internal/*"]}, name="a prefix pattern covers what is below"),
    ex("/internalx", None, config={"exemptions": ["/internal/*"]}, name="a prefix pattern stops at a segment boundary"),
    ex("/internal/../admin", None, config={"exemptions": ["/internal/*"]}, name="a prefix pattern needs a canonical rest"),
    ex("/internal/a%2e%2e", None, config={"exemptions": ["/internal/*"]}),
    ex("/api", "private_ip", peer="127.0.0.1"), ex("/api", "private_ip", peer="10.1.2.3"), ex("/api", "private_ip", peer="172.16.0.1"),
    ex("/api", "private_ip", peer="172.31.255.255", name="172.31.255.255 is private"), ex("/api", None, peer="172.32.0.1", name="172.32.0.1 is public"),
    ex("/api", "private_ip", peer="192.168.1.1"), ex("/api", "private_ip", peer="::1"), ex("/api", "private_ip", peer="fd12:3456::1"), ex("/api", "private_ip", peer="fc00::1"),
    ex("/api", "private_ip", peer="::ffff:10.0.0.1", name="an IPv4-mapped private address is private"),
    ex("/api", None, peer="100.64.0.1", name="carrier-grade NAT (100.64/10) is not exempt", description="Many mobile users share it; it is public space for rate limiting."),
    ex("/api", None, peer="169.254.1.1", name="IPv4 link-local is not exempt"),
    ex("/api", None, peer="fe80::1", name="IPv6 link-local is not exempt"),
    ex("/api", None, peer="10.0.0.1", config={"exempt_private_ips": False}, name="exempt_private_ips false"),
    ex("/api", "listed_ip", config={"exemptions": ["203.0.113.7"]}, name="a custom address"),
    ex("/api", "listed_ip", config={"exemptions": ["203.0.113.0/24"]}, name="a custom CIDR"),
    ex("/api", "listed_ip", peer="2001:db8::5", config={"exemptions": ["2001:db8::/32"]}, name="a custom IPv6 CIDR"),
    ex("/api", None, peer="10.0.0.2", config=T10, headers={"x-forwarded-for": "203.0.113.7"}, name="the private exemption applies to the resolved client, not the proxy"),
    ex("/api", None, peer="10.0.0.2", config={"trusted_proxies": ["10.0.0.0/8"], "exemptions": ["10.0.0.0/8"]}, headers={"x-forwarded-for": "junk, 10.5.5.5"},
       name="a client that could not be resolved is never exempt, even when listed"),
    ex("/health", P, peer=None, name="path exemptions need no address"),
]

NOW = 1700000000000
def dec(allowed=True, limit=100, remaining=99, reset_at=1700000030, retry_after=0, policy="public_api", reason=None, delay=0):
    return {"allowed": allowed, "limit": limit, "remaining": remaining, "reset_at": reset_at, "retry_after": retry_after, "policy": policy, "reason": reason, "delay": delay}
BODY = '{"error":"rate_limit_exceeded","message":"Too many requests. Please try again later.","retry_after":%d}'
UNAVAILABLE = '{"error":"rate_limiter_unavailable","message":"Rate limiting is temporarily unavailable. Please try again later.","retry_after":%d}'
def hc(name, d, fmt, headers, status=None, body=None, window=60, description=None):
    c = {"name": name}
    if description: c["description"] = description
    c.update({"decision": d, "format": fmt, "window": window, "now_ms": NOW, "expect": {"headers": headers, "status": status, "body": body}})
    return c
rej = dec(False, remaining=0, retry_after=42, reason="limit")
headers = [
    hc("standard, admitted", dec(), "standard", {"RateLimit-Limit": "100", "RateLimit-Remaining": "99", "RateLimit-Reset": "1700000030"}),
    hc("standard, rejected", rej, "standard", {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "1700000030", "Retry-After": "42"}, 429, BODY % 42),
    hc("ietf, admitted", dec(), "ietf", {"RateLimit-Policy": '"public_api";q=100;w=60', "RateLimit": '"public_api";r=99;t=30'},
       description="draft-ietf-httpapi-ratelimit-headers-10/11: q quota, w window (s), r remaining, t seconds until reset."),
    hc("ietf, rejected", rej, "ietf", {"RateLimit-Policy": '"public_api";q=100;w=60', "RateLimit": '"public_api";r=0;t=30', "Retry-After": "42"}, 429, BODY % 42),
    hc("ietf, a reset in the past is t=0", dec(reset_at=1699999990), "ietf", {"RateLimit-Policy": '"public_api";q=100;w=60', "RateLimit": '"public_api";r=99;t=0'}),
    hc("ietf, the policy name is an sf-string", dec(policy='a "b"\\c\u00e9'), "ietf", {"RateLimit-Policy": '"a \\"b\\"\\\\c_";q=100;w=60', "RateLimit": '"a \\"b\\"\\\\c_";r=99;t=30'},
       description='Quote and backslash escaped; characters outside printable ASCII become _.'),
    hc("ietf, a sub-second window rounds up to 1", dec(), "ietf", {"RateLimit-Policy": '"public_api";q=100;w=1', "RateLimit": '"public_api";r=99;t=30'}, window=0.5),
    hc("legacy, admitted", dec(), "legacy", {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "99", "X-RateLimit-Reset": "1700000030"}),
    hc("legacy, rejected", rej, "legacy", {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000030", "Retry-After": "42"}, 429, BODY % 42),
    hc("none, admitted", dec(), "none", {}),
    hc("none, rejected: Retry-After only", rej, "none", {"Retry-After": "42"}, 429, BODY % 42),
    hc("a fractional limit is reported whole", dec(limit=2.5, remaining=1), "standard", {"RateLimit-Limit": "2", "RateLimit-Remaining": "1", "RateLimit-Reset": "1700000030"}),
    hc("Retry-After is at least 1", dec(False, remaining=0, retry_after=0, reason="limit"), "standard",
       {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "1700000030", "Retry-After": "1"}, 429, BODY % 1),
    hc("cooldown is a 429", dec(False, remaining=0, retry_after=290, reason="cooldown"), "standard",
       {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "1700000030", "Retry-After": "290"}, 429, BODY % 290),
    hc("cost above capacity is a 429", dec(False, remaining=99, retry_after=60, reason="cost_exceeds_capacity"), "standard",
       {"RateLimit-Limit": "100", "RateLimit-Remaining": "99", "RateLimit-Reset": "1700000030", "Retry-After": "60"}, 429, BODY % 60),
    hc("store down, failing closed: 503", dec(False, remaining=0, retry_after=1, reason="store_error"), "standard",
       {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "1700000030", "Retry-After": "1"}, 503, UNAVAILABLE % 1,
       description="The client did nothing wrong: 503 Service Unavailable, not 429."),
    hc("exempt: no headers", dec(reason="exempt", reset_at=0, remaining=100), "standard", {}),
]

def pair(name, a, b, winner, description=None):
    c = {"name": name}
    if description: c["description"] = description
    c.update({"first": a, "second": b, "describes": winner})
    return c
restrictive = [
    pair("a rejection beats an admission", dec(remaining=900, policy="global"), dec(False, remaining=0, retry_after=30, reason="limit", policy="login"), "second"),
    pair("an admission never replaces a rejection", dec(False, remaining=0, retry_after=30, reason="limit", policy="login"), dec(remaining=900, policy="global"), "first"),
    pair("between admissions, fewer remaining wins", dec(remaining=900, policy="global"), dec(limit=5, remaining=4, policy="login"), "second"),
    pair("fewer remaining wins whichever came first", dec(limit=5, remaining=4, policy="login"), dec(remaining=900, policy="global"), "first"),
    pair("equal remaining: the later reset wins", dec(remaining=4, reset_at=1700000030, policy="a"), dec(remaining=4, reset_at=1700000090, policy="b"), "second"),
    pair("equal in every way: the first stays", dec(remaining=4, policy="a"), dec(remaining=4, policy="b"), "first"),
    pair("between rejections, the longer wait wins", dec(False, remaining=0, retry_after=5, reason="limit", policy="a"), dec(False, remaining=0, retry_after=300, reason="cooldown", policy="b"), "second"),
    pair("an exempt decision never wins", dec(remaining=0, policy="a"), dec(reason="exempt", policy="b"), "first"),
    pair("anything beats an exempt decision", dec(reason="exempt", policy="a"), dec(remaining=50, policy="b"), "second"),
]

def write(name, doc):
    OUT[name] = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

write("client-ip.json", {"about": "Peer address + headers + trusted proxies -> client address, key, exemption. Policy {limit: 100, window: 60} unless a case says otherwise.", "cases": client_ip})
write("keys.json", {"about": "Key strategies: request -> storage identity. api_key cases use the secret in config.", "cases": keys})
write("exemptions.json", {"about": "Path and address exemptions: request -> exempt reason (null: limited).", "cases": exemptions})
write("headers.json", {"about": "Decision -> response headers, status and body, per header format.", "cases": headers})
write("restrictive.json", {"about": "Two limiters on one request admitted in order: which decision the response headers describe.", "cases": restrictive})

def ref(s):
    """Independent reference: Python's ipaddress, plus Halt's rules (zone dropped, mapped -> IPv4, strict length)."""
    t = s.split('%')[0] if '%' in s and ':' in s else s
    if '%' in s and ':' in s:
        zone = s.split('%', 1)[1]
        if not re.fullmatch(r'[0-9A-Za-z._~-]{1,64}', zone): return None
    try:
        a = ipaddress.ip_address(t)
    except ValueError:
        return None
    if a.version == 6 and a.ipv4_mapped: return str(a.ipv4_mapped)
    return a.compressed
inputs = ['203.0.113.7', '0.0.0.0', '255.255.255.255', '256.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.04', '1.2.3.-4', ' 1.2.3.4', '1.2.3.4 ', '',
  '1.2.3.4/32', '::', '::1', '1::', '2001:db8::1', '2001:DB8::1', '2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8:0:0:1:0:0:1', '2001:0:0:1:0:0:0:1',
  '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1::2::3', ':1', '1:', ':::', '12345::1', 'g::1', '::ffff:203.0.113.7', '::FFFF:cb00:7107', '::203.0.113.7',
  '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '::ffff:1.2.3', 'fe80::1%eth0', 'fe80::1%', 'fe80::1%eth 0', '1.2.3.4%eth0', '[::1]', 'localhost', 'unknown', '0x7f.0.0.1', '2130706433']
parse = []
for s in inputs:
    r = ref(s)
    parse.append({"input": s, "canonical": r})
cidrs = [
  {"cidr": "10.1.2.3/8", "canonical": "10.0.0.0/8", "contains": ["10.0.0.0", "10.255.255.255", "::ffff:10.9.9.9"], "excludes": ["11.0.0.0", "9.255.255.255", "::a01:203"]},
  {"cidr": "172.16.0.0/12", "canonical": "172.16.0.0/12", "contains": ["172.16.0.1", "172.31.255.255"], "excludes": ["172.32.0.0", "172.15.255.255"]},
  {"cidr": "203.0.113.7", "canonical": "203.0.113.7/32", "contains": ["203.0.113.7"], "excludes": ["203.0.113.8"]},
  {"cidr": "fc00::/7", "canonical": "fc00::/7", "contains": ["fc00::1", "fdff:ffff::1"], "excludes": ["fe00::1", "fbff::1"]},
  {"cidr": "2001:db8::/32", "canonical": "2001:db8::/32", "contains": ["2001:db8:ffff::1", "2001:DB8::"], "excludes": ["2001:db9::1", "10.0.0.1"]},
  {"cidr": "2001:db8:1:2:3::/67", "canonical": "2001:db8:1:2::/67", "contains": ["2001:db8:1:2:1fff::1"], "excludes": ["2001:db8:1:2:2000::1"]},
  {"cidr": "::ffff:10.0.0.0/104", "canonical": "10.0.0.0/8", "contains": ["10.1.1.1"], "excludes": ["11.1.1.1"]},
  {"cidr": "10.0.0.0/33", "canonical": None}, {"cidr": "10.0.0.0/", "canonical": None}, {"cidr": "10.0.0.0/-1", "canonical": None},
  {"cidr": "::/129", "canonical": None}, {"cidr": "nonsense/8", "canonical": None},
  {"cidr": "0.0.0.0/0", "canonical": "0.0.0.0/0", "contains": ["1.2.3.4"], "excludes": ["::1"]},
]
# cross-check CIDRs with Python
for c in cidrs:
    if c["canonical"] is None: continue
    s = c["cidr"]
    net = ipaddress.ip_network(s if '/' in s else s + ('/32' if ':' not in s else '/128'), strict=False) if not s.startswith('::ffff:') else ipaddress.ip_network('10.0.0.0/8')
    assert str(net) == c["canonical"], (s, str(net))
    for a in c["contains"]:
        x = ipaddress.ip_address(a); x = x.ipv4_mapped or x if x.version == 6 else x
        assert x in net, (a, s)
    for a in c["excludes"]:
        x = ipaddress.ip_address(a); x = (x.ipv4_mapped or x) if x.version == 6 else x
        assert x.version != net.version or x not in net, (a, s)
prefix = [
  {"address": "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "bits": 64, "key": "ip:2001:db8:1:2::/64"},
  {"address": "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "bits": 56, "key": "ip:2001:db8:1::/56"},
  {"address": "2001:db8:1:2ff:aaaa::", "bits": 56, "key": "ip:2001:db8:1:200::/56"},
  {"address": "2001:db8::1", "bits": 128, "key": "ip:2001:db8::1"},
  {"address": "2001:db8::1", "bits": 1, "key": "ip:::/1"},
  {"address": "203.0.113.7", "bits": 48, "key": "ip:203.0.113.7"},
]
for p in prefix:
    if ':' in p["address"] and p["bits"] < 128:
        n = ipaddress.ip_network(f'{p["address"]}/{p["bits"]}', strict=False)
        assert p["key"] == f"ip:{n.network_address.compressed}/{p['bits']}", (p, n)
doc = {"about": "Address parsing and canonical text, CIDR ranges, IPv6 prefix keys. canonical null: rejected.", "parse": parse, "cidr": cidrs, "ipv6_prefix_keys": prefix}
write("addresses.json", doc)


if __name__ == "__main__":
    check = "--check" in sys.argv
    stale = []
    for name, text in OUT.items():
        path = os.path.join(HERE, name)
        if check:
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    stale.append(name)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if stale:
        sys.exit(f"spec/http: {', '.join(stale)} differ from what generate.py writes; run python3 spec/http/generate.py and review the diff")
    print(f"spec/http: {len(OUT)} files {'up to date' if check else 'written'}")
