"""Differential test: generated hostile requests through the built TypeScript package and through this SDK.

For every config and request, ``debugKey()`` in Node and ``debug_key()`` here agree on the client address, the
exemption and the storage key (API-key HMACs, hashed identities and IPv6 prefixes included), so a Node and a
Python service behind the same proxies share one limit per client.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest

from halt.core.types import Policy
from halt.http.request import RequestView
from tests.http.support import http_limiter, view

HERE = Path(__file__).resolve().parent
DIST = HERE.parents[2] / "typescript" / "dist" / "index.js"

CONFIGS: list[dict[str, Any]] = [
    {},
    {"trusted_proxies": ["10.0.0.0/8", "loopback", "fc00::/7"]},
    {"trusted_proxies": ["private"], "proxy_header": "forwarded"},
    {"trusted_proxies": ["10.0.0.0/8"], "proxy_header": "x-real-ip", "ipv6_prefix": 48},
    {"key_strategy": "user", "on_missing_identity": "shared"},
    {"key_strategy": "api_key", "api_key_secret": "s" * 32, "exempt_private_ips": False},
    {"key_strategy": "composite", "ipv6_prefix": 128, "on_missing_identity": "allow"},
    {"key_strategy": "custom", "key_header": "x-user"},
    {"exemptions": ["/internal/*", "198.51.100.0/24", "2001:db8:beef::/48"], "exempt_health_checks": False},
]

FRAGMENTS = [
    "1.2.3.4", "10.0.0.1", "127.0.0.1", "192.168.1.1", "198.51.100.7", "203.0.113.9", "::1", "::ffff:10.0.0.1",
    "::ffff:203.0.113.7", "2001:db8:beef:1::9", "2001:DB8::0:1", "fe80::1%eth0", "fd00::1%25lo", "[::1]:80",
    "[fc00::1]", "[2001:db8::7]:4711", "10.0.0.1:8080", "unknown", "_hidden", "for=", "for=10.0.0.1",
    'For="[::1]:80"', "for=203.0.113.5", "by=10.0.0.2", "proto=https", '"', '\\"', ";", ",", ", ", " ", "\t", "%",
    "%25", "..", "/", "\\", "\x00", "\uffff", "é", "🦄", "\ud800", "999.1.1.1", "1.2.3.4:99999", "[", "]",
    "010.0.0.1", "::", ":::", "Bearer ", "bearer\tk", "sk_live_1", "health", "internal", "ping", "?", "#", "=",
]  # fmt: skip
PATHS = [
    "/health", "/healthz/", "/HEALTH", "/ping;x", "/internal", "/internal/jobs", "/internal/../admin",
    "/internal//x", "/%68ealth", "/api/items?x=/health", "http://h/health", "/ready#x", "//health", "",
]  # fmt: skip


def _text(rng: random.Random, parts: int = 12) -> str:
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, parts)))


def _cases(n: int, seed: int = 20261201) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        peer: Optional[str] = rng.choice(
            [None, "203.0.113.7", "10.0.0.2", "127.0.0.1", "::1", "fc00::5", "2001:db8:1:2::3", _text(rng, 3)]
        )
        headers: dict[str, Any] = {}
        for name in ("x-forwarded-for", "forwarded", "x-real-ip", "x-api-key", "authorization", "x-user"):
            if rng.random() < 0.5:
                headers[name] = [_text(rng) for _ in range(rng.randint(1, 3))] if rng.random() < 0.3 else _text(rng)
        user = rng.choice(
            [None, "ada", 42, {"id": _text(rng, 4)}, {"id": rng.randint(-(2**53), 2**53)}, {"id": rng.random() * 1e-5},
             {"id": rng.choice([0.1, 4.5, 1e21, 1e-7, 123.0])}, {"id": ""}, {"id": "x" * rng.randint(250, 300)}]
        )  # fmt: skip
        path = rng.choice(PATHS) if rng.random() < 0.7 else _text(rng, 5)
        out.append({"peer": peer, "headers": headers, "path": path, "user": user})
    return out


def _python(config: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    c = dict(config)
    strategy = c.pop("key_strategy", None)
    key_header = c.pop("key_header", None)
    extractor = (lambda req: req.header(key_header)) if key_header else None
    limiter, _, _ = http_limiter(
        Policy(name="parity", limit=100, window=60, key_strategy=strategy), key_extractor=extractor, **c
    )
    req: RequestView = view(ip=case["peer"], path=case["path"], headers=case["headers"], user=case["user"])
    e = limiter.debug_key(req)
    return {"key": e.key, "exempt": e.exempt, "client_ip": e.client_ip}


def test_node_and_python_resolve_every_request_alike() -> None:
    if shutil.which("node") is None or not DIST.exists():
        if os.environ.get("CI"):
            pytest.fail("node and packages/typescript/dist are needed: scripts/test.sh builds it first")
        pytest.skip("node or packages/typescript/dist (npm run build -w halt) is missing")
    cases = _cases(400)
    payload = json.dumps({"configs": CONFIGS, "cases": cases})  # ASCII with \\u escapes: lone surrogates survive
    done = subprocess.run(
        ["node", str(HERE / "node_keys.mjs"), str(DIST)], input=payload, capture_output=True, text=True, check=True
    )
    node = json.loads(done.stdout)
    mismatches = []
    for case, answers in zip(cases, node):
        for config, theirs in zip(CONFIGS, answers):
            ours = _python(config, case)
            if ours != theirs:
                mismatches.append({"config": config, "case": case, "node": theirs, "python": ours})
    assert mismatches == [], json.dumps(mismatches[:3], indent=1)
    exempt = sum(1 for answers in node for a in answers if a["exempt"] is not None)
    hashed = sum(1 for answers in node for a in answers if a["key"] and "#" in a["key"])
    assert exempt > 50 and hashed > 20  # the generated traffic reaches the interesting branches
