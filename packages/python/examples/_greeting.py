"""The greeting the HTTP examples print once they listen: where, what limit, and curl commands to try."""

from __future__ import annotations

PER_ADDRESS = "policy public_api (100/min, burst 120) per client address"


def greet(server: str, url: str, limit: str = PER_ADDRESS, client: str = "X-Forwarded-For: 203.0.113.7") -> None:
    """``client``: the header that makes curl a client of the limit (a forwarded address, an API key...)."""
    h = f"-H '{client}'"
    print(
        f"{server} on {url}, limited by Halt: {limit}.\n"
        "Try, in another terminal:\n"
        f"  curl -i {h} {url}/api/hello        # 200 with RateLimit-* headers\n"
        f"  for i in $(seq 125); do curl -s -o /dev/null -w '%{{http_code}} ' {h} {url}/api/hello; done; echo\n"
        f"  curl -i {h} {url}/api/hello        # 429, Retry-After and a JSON body\n"
        f"  curl -i {url}/health                                              # exempt: no headers\n"
        "Ctrl-C to stop.",
        flush=True,
    )
