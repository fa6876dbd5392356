"""The ```python blocks of README.md, docs/*.md and packages/python/README.md are true: found at test time, one test
per block and check, named by its file and fence line (``test_types[packages/python/README.md:59]``).

``test_types``, every block: it type-checks against the package. Each block is written (under mypy's cache
directory) as a module of its own, padded with blank lines so that its line numbers are the Markdown file's, and one
mypy run checks them all, with the package's configuration (pyproject.toml: strict, the clients without stubs
ignored) loosened for fragments: functions may go unannotated or elided (``def login(): ...``), and a block may
``await`` at top level. A block importing a name that does not exist, calling what Halt does not have or passing a
keyword it does not take fails with mypy's message, at ``file:line`` of the Markdown file.

``test_runs``, every block that needs no server (it imports no ``SERVER_MODULE``): executed in a fresh namespace
(under ``asyncio.run`` when it awaits), tracebacks quoting the Markdown lines; then what it leaves is used as the docs
say: each FastAPI/Starlette app answers ``GET /`` and each route the block declared (from 203.0.113.7, with
``X-API-Key: key-pro``; the first request builds the middleware stack), each Flask app ``GET /``, with no exception
and no 5xx; a Django ``HALT`` setting builds its limiter as ``halt.adapters.django.HaltMiddleware`` does at startup,
and the ``halt.`` paths of ``MIDDLEWARE`` import. Halt must log no warning meanwhile (a callback that raises, e.g. a
``plan_of`` calling what the request view lacks, is logged and served under the default: that fails too).

The ambient names: fragments lean on an earlier block of their page (``app.add_middleware(...)``). Those names are
declared once below, with their types for mypy (``AMBIENT_TYPES``, a stub module the block imports them from on its
first, blank line) and their values for a run (``ambient()``, fresh for each block). A block that binds or imports a
name itself uses its own.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import logging
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mypy.api
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from flask import Flask
from starlette.applications import Starlette

from halt import RateLimiter, presets
from halt.adapters.fastapi import HaltMiddleware

PKG = Path(__file__).resolve().parents[1]
ROOT = PKG.parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), PKG / "README.md"]
#: A module a block imports to talk to a server (a client or a Halt store on one): type-checked, not run.
SERVER_MODULE = re.compile(
    r"(redis|psycopg|psycopg_pool|pymongo|boto3|pymemcache|aiomcache"
    r"|halt\.stores\.(redis|postgres|mongodb|dynamodb|memcached))(\.|$)"
)

AMBIENT_TYPES = """
import fastapi
import flask
from halt import RateLimiter as RateLimiter, presets as presets
from halt.adapters.fastapi import HaltMiddleware as HaltMiddleware

limiter: RateLimiter
auth_limiter: RateLimiter
app: fastapi.FastAPI
flask_app: flask.Flask
accounts: dict[str, str]  # API key to plan name: the lookup of the plans block
"""


def ambient() -> dict[str, Any]:
    return {
        "RateLimiter": RateLimiter,
        "presets": presets,
        "HaltMiddleware": HaltMiddleware,
        "limiter": RateLimiter(policy=presets.PUBLIC_API),
        "auth_limiter": RateLimiter(policy=presets.AUTH_ENDPOINTS),
        "app": FastAPI(),
        "flask_app": Flask("docs_snippet"),
        "accounts": {"key-pro": "pro"},
    }


AMBIENT = frozenset(ambient())


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository
    line: int  # of the opening fence
    code: str

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"

    def padded(self) -> str:
        """The code on the lines it has in the Markdown file."""
        return "\n" * self.line + self.code

    def module(self) -> str:
        """The block as mypy sees it: the ambient names it does not bind imported on the first (blank) line."""
        names = sorted(AMBIENT - bound_names(self.code))
        return f"from _ambient import {', '.join(names)}" + self.padded() if names else self.padded()

    def needs_server(self) -> bool:
        nodes = list(ast.walk(ast.parse(self.code)))
        modules = [a.name for n in nodes if isinstance(n, ast.Import) for a in n.names]
        modules += [n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module]
        return any(SERVER_MODULE.match(m) for m in modules)


def bound_names(code: str) -> set[str]:
    """The names a block binds anywhere (scopes taken loosely: a fragment is short)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def blocks_of(doc: Path) -> list[Block]:
    """The ```python blocks of a Markdown file (dedented by their fence's indentation)."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() == "```python":
            indent = len(line) - len(line.lstrip())
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
            code = "\n".join(ln[indent:] for ln in lines[i + 1 : end]) + "\n"
            blocks.append(Block(doc.relative_to(ROOT).as_posix(), i + 1, code))
    return blocks


BLOCKS = [b for doc in DOCS for b in blocks_of(doc)]
RUNNABLE = [b for b in BLOCKS if not b.needs_server()]


def test_every_python_fence_is_a_test() -> None:
    """Every fence opening Python code is one the parser reads (a ``~~~py`` or ````Python`` fence: extend it)."""
    opening = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*(python3?|py)\b", re.IGNORECASE)
    fences = sum(1 for doc in DOCS for line in doc.read_text(encoding="utf-8").splitlines() if opening.match(line))
    assert fences == len(BLOCKS) > 0, f"{fences} Python fences, {len(BLOCKS)} blocks parsed"


@pytest.fixture(scope="module")
def mypy_errors() -> dict[str, list[str]]:
    """One mypy run over every block: its errors by block id, as ``file:line: message`` of the Markdown file."""
    # A fixed directory (ignored by packages/python/.gitignore): mypy's cache knows a module by its path.
    tmp = PKG / ".mypy_cache" / "docs_snippets"
    tmp.mkdir(parents=True, exist_ok=True)
    for stale in tmp.glob("block_*.py"):
        stale.unlink()
    (tmp / "_ambient.pyi").write_text(AMBIENT_TYPES, encoding="utf-8")
    of: dict[str, Block] = {}
    for n, b in enumerate(BLOCKS):
        (tmp / f"block_{n}.py").write_text(b.module(), encoding="utf-8")
        of[str(tmp / f"block_{n}.py")] = b
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(PKG)  # `halt` is found here (mypy does not follow the editable install's import hook)
        out, err, status = mypy.api.run(
            [
                *("--config-file", "pyproject.toml", "--cache-dir", str(tmp / "cache")),
                *("--allow-untyped-defs", "--allow-incomplete-defs", "--disable-error-code", "top-level-await"),
                *("--disable-error-code", "empty-body"),
                *("--no-error-summary", "--no-pretty", "--show-absolute-path"),
                *of,
            ]
        )
    assert status in (0, 1), f"mypy did not run:\n{out}{err}"
    errors: dict[str, list[str]] = {b.id: [] for b in BLOCKS}
    for m in re.finditer(r"^(.+?):(\d+): error: (.*)$", out, re.MULTILINE):
        if m[1] in of:
            errors[of[m[1]].id].append(f"{of[m[1]].path}:{m[2]}: {m[3]}")
        else:  # in the ambient stub or the package: every block is suspect
            for found in errors.values():
                found.append(m[0])
    return errors


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_types(block: Block, mypy_errors: dict[str, list[str]]) -> None:
    if mypy_errors[block.id]:
        pytest.fail(f"mypy, the block of {block.id}:\n" + "\n".join(mypy_errors[block.id]), pytrace=False)


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_runs(block: Block, caplog: pytest.LogCaptureFixture) -> None:
    failure = None
    with caplog.at_level(logging.WARNING, logger="halt"):
        try:
            run(block)
        except Exception as e:
            failure = f"the block of {block.id} fails:\n" + "".join(_from_the_block(block, e))
    if failure:
        pytest.fail(failure, pytrace=False)
    warned = [r.getMessage() for r in caplog.records if r.name.startswith("halt") and r.levelno >= logging.WARNING]
    if warned:
        pytest.fail(f"the block of {block.id} ran, but Halt warned (a callback failed?):\n" + "\n".join(warned), False)


def _from_the_block(block: Block, e: Exception) -> list[str]:
    """The traceback of ``e`` from the block's first frame on (a frame of the Markdown file, quoting its line)."""
    doc, tb = str(ROOT / block.path), e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != doc:
        tb = tb.tb_next
    return traceback.format_exception(type(e), e, tb or e.__traceback__)


def run(block: Block) -> None:
    # Named by the Markdown file, tracebacks quote its lines; dont_inherit: not this file's `from __future__` import.
    code = compile(block.padded(), str(ROOT / block.path), "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    ns: dict[str, Any] = {"__name__": "docs_snippet", **ambient()}
    result = eval(code, ns)  # a block with a top-level await gives a coroutine
    if inspect.iscoroutine(result):
        asyncio.run(result)
    for value in list(ns.values()):
        if isinstance(value, Starlette):
            asyncio.run(serve_asgi(value))
        elif isinstance(value, Flask):
            value.testing = True  # exceptions of the app propagate here
            response = value.test_client().get("/", headers={"X-API-Key": "key-pro"})
            assert response.status_code < 500, f"Flask app: GET / answered {response.status_code}"
    if isinstance(ns.get("HALT"), dict):  # Django settings
        from django.utils.module_loading import import_string

        from halt.adapters.django import limiter_from_settings
        from halt.http.gate import Gate

        halt_limiter, headers, _, _ = limiter_from_settings(ns["HALT"])
        Gate(halt_limiter, headers, "HaltMiddleware", quota=ns["HALT"].get("quota"))
        for path in ns.get("MIDDLEWARE", []):
            if isinstance(path, str) and path.startswith("halt."):
                import_string(path)


async def serve_asgi(app: Starlette) -> None:
    """``GET /`` and one request per route of the app (none of them may fail or answer 5xx)."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4711))
    requests = [("GET", "/")] + [
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods or ())
    ]
    async with httpx.AsyncClient(transport=transport, base_url="http://docs.test") as client:
        for method, path in requests:
            response = await client.request(method, path, headers={"X-API-Key": "key-pro"})
            assert response.status_code < 500, f"{method} {path} answered {response.status_code}: {response.text}"
