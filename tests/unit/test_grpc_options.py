"""Settings -> gRPC server options, and the message -> target translation."""

from __future__ import annotations

from pathlib import Path

import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from app.application.targets import Target
from app.bootstrap import StartupError, grpc_options
from app.domain.errors import InvalidInput
from app.domain.values import FieldRef
from app.grpc.convert import TargetCache, target_from
from app.grpc.server import GrpcOptions, TlsFiles
from app.infra.settings import Settings


def test_options_follow_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        grpc_host="10.1.2.3",
        grpc_port=6000,
        grpc_max_message_bytes=4096,
        max_batch_items=7,
        grpc_tls_cert_file=tmp_path / "c.pem",
        grpc_tls_key_file=tmp_path / "k.pem",
        grpc_tls_client_ca_file=tmp_path / "ca.pem",
    )
    options = grpc_options(settings)
    assert (options.address, options.max_message_bytes, options.max_batch_items) == (
        "10.1.2.3:6000",
        4096,
        7,
    )
    assert options.tls == TlsFiles(tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem")
    assert grpc_options(Settings(data_dir=tmp_path)).tls is None


@pytest.mark.parametrize(
    "files",
    [
        {"grpc_tls_cert_file": "c.pem"},
        {"grpc_tls_key_file": "k.pem"},
        {"grpc_tls_client_ca_file": "ca.pem"},
    ],
)
def test_incomplete_tls_settings_refuse_to_start(tmp_path: Path, files: dict[str, str]) -> None:
    settings = Settings(data_dir=tmp_path, **{k: tmp_path / v for k, v in files.items()})
    with pytest.raises(StartupError):
        grpc_options(settings)


def test_ipv6_hosts_are_bracketed() -> None:
    assert GrpcOptions(host="::", port=1).address == "[::]:1"
    assert GrpcOptions(host="[::1]", port=1).address == "[::1]:1"


def test_targets_from_messages() -> None:
    assert target_from(pb.Target(module="global.payroll")) == Target(module="global.payroll")
    assert target_from(pb.Target(field=pb.Field(table="t", column="c"))) == Target(
        field=FieldRef("t", "c")
    )
    for bad in (pb.Target(), pb.Target(module="UPPER.case"), pb.Target(field=pb.Field(table="t"))):
        with pytest.raises(InvalidInput):
            target_from(bad)


def test_target_cache_uses_the_default_and_stays_bounded() -> None:
    cache = TargetCache(pb.Target(module="global.payroll"), size=2)
    assert cache.resolve(None) == Target(module="global.payroll")
    for i in range(5):
        cache.resolve(pb.Target(module=f"global.m{i}"))
    assert len(cache._entries) == 2
    with pytest.raises(InvalidInput):
        TargetCache().resolve(None)
