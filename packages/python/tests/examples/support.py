"""An example run as a child process, as a newcomer would: its output collected, its URL awaited, then stopped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: The TypeScript package, whose examples import its build (packages/typescript/dist: npm run build -w halt).
TYPESCRIPT = Path(__file__).resolve().parents[3] / "typescript"
GREETING = re.compile(r" on (http://(?:127\.0\.0\.1|localhost):\d+)")


class RunningExample:
    """One example process (``python`` for a .py file, ``node`` for a .mjs one): ``url`` (the first
    ``on http://127.0.0.1:PORT`` or ``localhost:PORT`` it printed) and its output so far."""

    def __init__(self, file: Path, env: dict[str, str]) -> None:
        self.url = ""
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            ["node" if file.suffix == ".mjs" else sys.executable, str(file)],
            cwd=file.parent,
            env={**os.environ, "PORT": "0", "PYTHONUNBUFFERED": "1", **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # log lines (stderr) and greeting (stdout) in the order written
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        code = self.process.wait()
        with self._changed:
            self._lines.append(f"(example exited with {code})")
            self._changed.notify_all()

    def lines(self) -> list[str]:
        with self._changed:
            return list(self._lines)

    def until(self, ready: Callable[[list[str]], bool], timeout: float = 15.0) -> list[str]:
        """The output once ``ready(lines)`` holds (woken by each new line), failing after ``timeout`` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: ready(self._lines) or _exited(self._lines), timeout):
                raise AssertionError("timed out waiting for the example; it printed:\n" + "\n".join(self._lines))
            return list(self._lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _exited(lines: list[str]) -> bool:
    return bool(lines) and lines[-1].startswith("(example exited")


StartExample = Callable[..., RunningExample]


def server_url(variable: str, services: str) -> str:
    """A test server's address from the environment; skipped without it (failed under CI, where it must be set)."""
    url = os.environ.get(variable)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{variable} is not set: scripts/test.sh starts the servers")
        pytest.skip(f'{variable} not set (run: eval "$(scripts/services.sh start {services})")')
    return url
