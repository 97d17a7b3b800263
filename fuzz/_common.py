"""Shared by the fuzz targets: the seed corpus directory and libFuzzer's command line."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prepare_argv(target: str, seeds: Iterable[bytes]) -> list[str]:
    """``sys.argv`` for ``atheris.Setup``: the caller's libFuzzer flags, then a corpus
    directory holding ``seeds`` (a fresh temporary one unless the caller named one)."""
    flags = [a for a in sys.argv[1:] if a.startswith("-")]
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    if not dirs:
        dirs = [tempfile.mkdtemp(prefix=f"ekms-fuzz-{target}-")]
    corpus = Path(dirs[0])
    corpus.mkdir(parents=True, exist_ok=True)
    for n, seed in enumerate(seeds):
        (corpus / f"seed-{n:03d}").write_bytes(seed)
    return [sys.argv[0], *flags, *dirs]
