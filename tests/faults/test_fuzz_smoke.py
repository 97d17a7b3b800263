"""CI smoke run of the atheris fuzz targets (fuzz/): a few seconds each, from their seeds.

The long runs are ``scripts/fuzz SECONDS``. A crash here fails the test with the target's
report; the crash input is left in the test's temporary directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("EKMS_FUZZ_SMOKE_SECONDS", "3"))


@pytest.mark.timeout(SECONDS + 90)
@pytest.mark.parametrize("target", ["ciphertext", "batch"])
def test_fuzz_target_runs_clean_for_a_few_seconds(target: str, tmp_path: Path) -> None:
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [
            sys.executable,
            str(ROOT / "fuzz" / f"fuzz_{target}.py"),
            f"-max_total_time={SECONDS}",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS + 80,
    )
    output = done.stdout + done.stderr
    runs = re.search(r"^Done (\d+) runs in (\d+) second", output, re.MULTILINE)
    assert done.returncode == 0 and runs, output[-4000:]
    assert list(artifacts.iterdir()) == [], "the fuzzer left a crash input"
    print(f"fuzz_{target}: {runs.group(1)} inputs in {runs.group(2)} s, no crash")
    assert int(runs.group(1)) > 100
