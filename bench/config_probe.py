"""Latency of the configuration test (``POST /ekms/config/test``: describe the key, wrap and
unwrap a probe through the provider) for the embedded default and for AWS KMS through moto.

    uv run python -m bench.config_probe [N]

Each provider: a real container (SQLite in a temp dir), configured, then N probes through the
use case behind the route; prints the median and the 90th percentile of the ``latency_ms`` the
probe itself reports. moto answers on 127.0.0.1, so the AWS figure is ekms's and aiobotocore's
share, not a region's round trip. PKCS#11 (SoftHSM2) and KMIP (PyKMIP) print theirs from
``tests/integration/test_pkcs11_chain.py`` and ``test_kmip_chain.py`` (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from app.application.config_probe import probe_ekms_config
from app.application.configuration import ConfigInput, configure_ekms
from app.bootstrap import running
from app.domain.values import Caller, KmsProvider
from app.infra.settings import Settings

ADMIN = Caller("bench-admin", frozenset({"ekms.admin"}))
REGION = "eu-west-1"


def _settings(data_dir: Path, **values: object) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{data_dir / 'ekms.db'}",
        data_dir=data_dir,
        jwt_hs256_secret="b" * 40,
        scheduler_enabled=False,
        auto_migrate=True,
        metrics_port=None,
        **values,  # type: ignore[arg-type]
    )


async def _probe(settings: Settings, configure: ConfigInput | None, n: int) -> list[float]:
    async with running(settings) as node:
        if configure is not None:
            await configure_ekms(node.ctx, ADMIN, configure)
        await probe_ekms_config(node.ctx, ADMIN)  # warm the connection pool
        out = []
        for _ in range(n):
            result = await probe_ekms_config(node.ctx, ADMIN)
            assert result.ok, result.reason
            out.append(result.latency_ms)
        return out


def _line(name: str, values: list[float]) -> str:
    p90 = statistics.quantiles(values, n=10)[-1]
    median = statistics.median(values)
    return f"{name:28s} median {median:7.2f} ms   p90 {p90:7.2f} ms   (n={len(values)})"


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        local = await _probe(_settings(Path(tmp) / "local", kms_provider="local"), None, n)
    print(_line("local root key", local))

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        os.environ.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto AWS_DEFAULT_REGION=REGION
        )
        key = boto3.client("kms", region_name=REGION, endpoint_url=url).create_key()
        key_id = key["KeyMetadata"]["KeyId"]
        with tempfile.TemporaryDirectory() as tmp:
            settings = _settings(
                Path(tmp),
                kms_provider="aws",
                aws_region=REGION,
                aws_endpoint_url=url,
                allow_insecure_kms_endpoint=True,
            )
            aws = await _probe(settings, ConfigInput(KmsProvider.AWS, key_id), n)
        print(_line("aws (moto on 127.0.0.1)", aws))
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
