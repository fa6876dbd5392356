"""The ``start_example`` fixture: examples started on free ports, stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Optional, Union

import pytest

from tests.examples.support import EXAMPLES, GREETING, RunningExample, StartExample


@pytest.fixture
def start_example() -> Iterator[StartExample]:
    """``start_example("fastapi_app.py", env={...})`` (a file of examples/, or the path of another example): the
    example on a free port, once it printed its URL."""
    running: list[RunningExample] = []

    def start(file: Union[str, Path], env: Optional[dict[str, str]] = None, timeout: float = 30.0) -> RunningExample:
        example = RunningExample(EXAMPLES / file, env or {})
        running.append(example)
        lines = example.until(lambda ls: any(GREETING.search(line) for line in ls), timeout)
        found = next((m for m in map(GREETING.search, lines) if m), None)
        if found is None:
            raise AssertionError(f"{file} did not start:\n" + "\n".join(lines))
        example.url = found.group(1)
        return example

    yield start
    for example in running:
        example.stop()
