"""A tiny run of ``bench.xks``: a separate ``ekms serve`` answers SigV4-signed encrypt and
decrypt calls, and the bench prints a rate, p50 and p99 for each. Never a speed."""

from __future__ import annotations

import re
import subprocess
import sys

HANG_SECONDS = 300  # a bound for a run that hangs, not a speed figure


def test_the_xks_bench_runs_and_reports_both_operations() -> None:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench.xks", "--requests", "30", "--concurrency", "2"],
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for op in ("encrypt", "decrypt"):
        line = re.search(
            rf"{op}\s+(\d+) req/s\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", result.stdout
        )
        assert line is not None, result.stdout
        assert int(line[1]) > 0 and float(line[2]) <= float(line[3])
