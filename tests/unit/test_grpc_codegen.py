"""The committed generated code is exactly what ``scripts/gen-proto`` makes from proto/: the
public ekms.v1 tree in the client package (the server's one copy too), the bench tree in app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
TREES = ["clients/python/src/ekms_client/gen", "app/grpc/gen"]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_matches_the_proto_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-proto"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for tree in TREES:
        fresh, committed = _tree(tmp_path / tree), _tree(ROOT / tree)
        assert sorted(fresh) == sorted(committed), "run `uv run scripts/gen-proto` and commit"
        stale = [name for name in fresh if fresh[name] != committed[name]]
        assert stale == [], f"{stale} differ from proto/: run `uv run scripts/gen-proto` and commit"


def test_each_proto_is_generated_once() -> None:
    """One copy of the generated code: the public contract only in the client package."""
    assert not (ROOT / "app" / "grpc" / "gen" / "ekms" / "v1").exists()
    assert not (
        ROOT / "clients" / "python" / "src" / "ekms_client" / "gen" / "ekms" / "bench"
    ).exists()


def test_generated_imports_resolve_inside_the_package() -> None:
    from ekms_client.gen.ekms.v1 import crypto_pb2, crypto_pb2_grpc

    assert crypto_pb2.DESCRIPTOR.package == "ekms.v1"
    assert crypto_pb2_grpc.CryptoStub is not None


def test_bench_echo_code_is_generated_too() -> None:
    from app.grpc.gen.ekms.bench.v1 import echo_pb2, echo_pb2_grpc

    assert echo_pb2.DESCRIPTOR.package == "ekms.bench.v1"
    assert echo_pb2_grpc.EchoStub is not None
