"""The Lua scripts of spec/redis, shipped as package data (halt/stores/lua, copied by spec/tools/build_redis.py,
whose --check fails when the copy drifts), and their SHA1."""

from __future__ import annotations

import hashlib
from pathlib import Path

_DIR = Path(__file__).resolve().parent.parent / "lua"
#: Every kernel with a script: the five algorithms, and the quota and penalty kernels of spec/saas.
KERNELS = ("token_bucket", "gcra", "fixed_window", "sliding_window", "leaky_bucket", "quota", "penalty")


def _load(name: str) -> str:
    return (_DIR / f"{name}.lua").read_text(encoding="utf-8")


#: The script of each kernel, byte for byte spec/redis/<kernel>.lua.
SCRIPTS: dict[str, str] = {name: _load(name) for name in KERNELS}
#: SHA1 of each script (what EVALSHA takes).
SHA1: dict[str, str] = {name: hashlib.sha1(text.encode("utf-8")).hexdigest() for name, text in SCRIPTS.items()}

#: The limit-set script, byte for byte spec/redis/limit_set.lua, and its SHA1.
SET_SCRIPT: str = _load("limit_set")
SET_SHA1: str = hashlib.sha1(SET_SCRIPT.encode("utf-8")).hexdigest()
