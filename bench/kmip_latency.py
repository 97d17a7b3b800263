"""Wrap / unwrap latency of the KMIP provider against PyKMIP's server on 127.0.0.1.

    uv run --frozen python -m bench.kmip_latency [N]

Starts the test harness's PyKMIP server (tests/fixtures/kmip.py) with fresh certificates in a
temporary directory, creates an Active AES-256 key with PyKMIP's client, then times N wraps and
N unwraps (default 100) of a 32-byte key, one at a time, through ``KmipKms`` (pool warm after
the first call). Prints the median and p90 of each, in milliseconds. A measurement, not a test:
PyKMIP's server is a single-process Python reference server, so the figures are an upper bound
for the adapter's own cost plus one TLS round trip per KMIP call (wrap: GetAttributes to find
the current key, then Encrypt; unwrap: Decrypt).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.application.ports import ExternalKeyRef
from app.infra.kms.kmip import KMIP_PROVIDER, KmipKmsConnector
from tests.fixtures.kmip import KmipAdmin, KmipServer, kmip_venv_python, write_pki

CONTEXT = {"ekms:instance": "bench", "ekms:kek": "kek-1"}


async def measure(server: KmipServer, uid: str, count: int) -> dict[str, list[float]]:
    connector = KmipKmsConnector(server.settings())
    kms = connector.connect(ExternalKeyRef(provider=KMIP_PROVIDER, key_id=uid))  # type: ignore[arg-type]
    key = bytes(range(32))
    samples: dict[str, list[float]] = {"wrap": [], "unwrap": []}
    try:
        blob = (await kms.wrap(key, CONTEXT)).ciphertext  # opens the pooled connection
        for _ in range(count):
            start = time.perf_counter()
            blob = (await kms.wrap(key, CONTEXT)).ciphertext
            samples["wrap"].append(time.perf_counter() - start)
        for _ in range(count):
            start = time.perf_counter()
            assert await kms.unwrap(blob, CONTEXT) == key
            samples["unwrap"].append(time.perf_counter() - start)
    finally:
        await connector.aclose()
    return samples


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    python = kmip_venv_python()
    with tempfile.TemporaryDirectory(prefix="ekms-kmip-bench-") as tmp:
        directory = Path(tmp)
        server = KmipServer(python, write_pki(directory / "pki"), directory)
        server.start()
        admin = KmipAdmin(python, server, directory / "admin.log")
        try:
            uid = admin.create()
            samples = asyncio.run(measure(server, uid, count))
        finally:
            admin.close()
            server.stop()
    for name, values in samples.items():
        ms = sorted(v * 1000 for v in values)
        p90 = ms[int(0.9 * (len(ms) - 1))]
        print(f"{name:>6}: median {statistics.median(ms):6.2f} ms  p90 {p90:6.2f} ms  (n={count})")


if __name__ == "__main__":
    main()
