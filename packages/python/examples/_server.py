"""What the example servers share: a listening socket for uvicorn, and the greeting printed once they listen (where,
what limit, and curl commands to try)."""

from __future__ import annotations

import os
import socket


def listen(default_port: int) -> tuple[socket.socket, str]:
    """A socket listening on 127.0.0.1 at $PORT (0: any free port), and its URL, for ``uvicorn.Server.run(sockets=)``.
    Listening before the greeting is printed, it gives the real port and refuses no early request."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets (without it, a response can wait ~40 ms for
    # a delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(os.environ.get("PORT", default_port))))
    sock.listen(1024)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


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
