"""CI's share of the soak: ``bench/soak.py`` for 15 seconds (``scripts/soak --minutes 10`` is
the real run). Capacity measured briefly, then half of it held with the 90/9/1 mix; nothing may
fail, and the summary must hold the figures (RSS at start and end, p99 latency)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("EKMS_SOAK_SMOKE_SECONDS", "15"))


@pytest.mark.timeout(SECONDS + 150)
def test_a_short_soak_fails_nothing(postgres_admin_url: str, tmp_path: Path) -> None:
    output = tmp_path / "soak.json"
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "bench.soak",
            "--seconds",
            str(SECONDS),
            "--capacity-seconds",
            "3",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        env={**os.environ, "EKMS_BENCH_PG_ADMIN_URL": postgres_admin_url},
        capture_output=True,
        text=True,
        timeout=SECONDS + 140,
    )
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    summary = json.loads(output.read_text())
    steady = summary["steady"]
    assert summary["ok"] and summary["failures"] == 0
    assert sum(steady["calls"].values()) > 0 and steady["calls"]["decrypt"] > 0
    assert summary["server"]["rss_kib_start"] > 0 and summary["server"]["rss_kib_end"] > 0
    assert steady["latency"]["p99_ms"] > 0
