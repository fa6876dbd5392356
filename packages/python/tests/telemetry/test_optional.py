"""The exporters' modules import without their optional dependency; creating an exporter then names the extra to
install (HALT_MISSING_PEER). Run in a fresh interpreter where the package cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None  # what an absent package looks like to import
import halt.telemetry.prometheus, halt.telemetry.otel, halt
from halt.core.errors import HaltConfigError
try:
    {create}
    print(json.dumps({{"created": True}}))
except HaltConfigError as e:
    print(json.dumps({{"code": e.code, "message": str(e)}}))
"""


def run(blocked: list[str], create: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocked=blocked, create=create)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize(
    ("blocked", "create", "extra", "package"),
    [
        (["prometheus_client"], "halt.telemetry.prometheus.PrometheusTelemetry()", "prometheus", "prometheus-client"),
        (["opentelemetry.metrics"], "halt.telemetry.otel.OTelTelemetry()", "otel", "opentelemetry-api"),
    ],
)
def test_importing_works_and_creating_names_the_extra(
    blocked: list[str], create: str, extra: str, package: str
) -> None:
    r = run(blocked, create)
    assert r["code"] == "HALT_MISSING_PEER"
    assert f"pip install 'halt-rate[{extra}]'" in str(r["message"]) and f"'{package}'" in str(r["message"])
