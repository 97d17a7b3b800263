"""Wrap/unwrap latency of the pkcs11 provider against a throwaway SoftHSM2 token.

    uv run python -m bench.pkcs11_latency          # needs softhsm2 (scripts/test installs it)

Medians (and p95) of ``N`` sequential calls of a 32-byte KEK with a two-entry context:

- ``wrap`` / ``unwrap`` / ``rewrap`` / ``describe``: ``Pkcs11Kms`` as the key chain calls it,
  from the event loop (the thread hop, the key lookup and AES-GCM in the token);
- ``unwrap, no hop``: the same work called synchronously (no thread), so the difference with
  ``unwrap`` is what the hop to the connector's thread costs;
- ``loop lag``: how late a 1 ms ticker on the event loop fires: idle, while ``N`` unwraps run
  one after the other (how the key chain calls the KMS), and while ``N`` are started at once
  (a burst: the loop and the connector's thread then contend for the GIL).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pkcs11
from pkcs11 import Attribute, KeyType
from pydantic import SecretStr

from app.application.ports import ExternalKeyRef
from app.infra.kms.pkcs11 import DEFAULT_LIBRARY, Pkcs11Config, Pkcs11KmsConnector
from app.infra.kms.pkcs11 import keys as p11keys
from app.infra.kms.pkcs11.blob import parse

N = 200
CONTEXT = {"ekms:instance": "bench", "ekms:kek": "kek-1"}
KEK = bytes(range(32))


def _token(base: Path) -> tuple[str, str]:
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label, pin = "ekms-bench", secrets.token_hex(8)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin]
        + ["--so-pin", secrets.token_hex(8)],
        check=True,
        capture_output=True,
    )
    with (
        pkcs11.lib(DEFAULT_LIBRARY)
        .get_token(token_label=label)
        .open(rw=True, user_pin=pin) as session
    ):
        session.generate_key(
            KeyType.AES,
            256,
            label="kek",
            id=b"\x01",
            store=True,
            template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
        )
    return label, pin


def _timed_sync(call: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(N):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def _timed(call: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(N):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def _loop_lag(load: Callable[[], Awaitable[object]] | None) -> list[float]:
    """How late each 1 ms tick of a ticker on the loop fired, while ``load`` ran."""
    lags: list[float] = []
    running = True

    async def ticker() -> None:
        while running:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append((time.perf_counter() - start) * 1000 - 1)

    tick = asyncio.create_task(ticker())
    await (load() if load is not None else asyncio.sleep(0.5))
    running = False
    await tick
    return lags


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        label, pin = _token(Path(tmp))
        connector = Pkcs11KmsConnector(
            Pkcs11Config(token_label=label, pin=SecretStr(pin), library=DEFAULT_LIBRARY)
        )
        kms = connector.connect(ExternalKeyRef(provider="pkcs11", key_id="kek"))  # type: ignore[arg-type]
        try:
            wrapped = (await kms.wrap(KEK, CONTEXT)).ciphertext  # warm: session opened
            blob = parse(wrapped)
            rows = {
                "wrap": await _timed(lambda: kms.wrap(KEK, CONTEXT)),
                "unwrap": await _timed(lambda: kms.unwrap(wrapped, CONTEXT)),
                "rewrap": await _timed(lambda: kms.rewrap(wrapped, CONTEXT)),
                "describe": await _timed(kms.describe),
                "unwrap, no hop": _timed_sync(
                    lambda: connector.pool.run(lambda s: p11keys.unwrap(s, "kek", blob, CONTEXT))
                ),
            }
            lags = {
                "idle": await _loop_lag(None),
                f"{N} unwraps in turn": await _loop_lag(
                    lambda: _timed(lambda: kms.unwrap(wrapped, CONTEXT))
                ),
                f"{N} unwraps at once": await _loop_lag(
                    lambda: asyncio.gather(*(kms.unwrap(wrapped, CONTEXT) for _ in range(N)))
                ),
            }
        finally:
            await connector.aclose()
    print(f"SoftHSM2 {DEFAULT_LIBRARY}, {N} sequential calls each, milliseconds")
    for name, samples in rows.items():
        p95 = statistics.quantiles(samples, n=20)[-1]
        print(f"  {name:<17} median {statistics.median(samples):6.3f}   p95 {p95:6.3f}")
    for name, ticks in lags.items():
        print(
            f"  loop lag, {name:<19} median {statistics.median(ticks):6.3f}"
            f"   worst {max(ticks):6.3f}   ({len(ticks)} ticks)"
        )


if __name__ == "__main__":
    asyncio.run(main())
