"""Every HaltConfigError code raised in halt/ has a section in docs/errors.md (the URL in each message points there)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import SPEC_DIR

HALT = Path(__file__).resolve().parents[2] / "halt"


def test_documents_every_code() -> None:
    raised = re.compile(r"(?:HaltConfigError|fail)\(\s*\"(HALT_[A-Z_0-9]+)\"")
    warning = re.compile(r"^\s+[A-Z_]+ = \"(HALT_[A-Z_0-9]+)\"", re.M)  # WarningCode constants
    codes = {m for f in HALT.rglob("*.py") for r in (raised, warning) for m in r.findall(f.read_text())}
    docs = (SPEC_DIR.parent / "docs" / "errors.md").read_text()
    assert len(codes) > 10
    assert sorted(c for c in codes if f"### {c.lower()}" not in docs) == []
