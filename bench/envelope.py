"""Client-side stream encryption (ekms_client.files): a stream through ``encrypt_stream`` and
straight into ``decrypt_stream``, next to raw AES-256-GCM on the same chunks, in one run.

    uv run --frozen python -m bench.envelope              # 2 GiB (run it once: it takes a while)
    uv run --frozen python -m bench.envelope --mib 64     # a small size, for CI

The data key comes from a local fake that holds it (no server: the one RPC per stream is not
what is measured). The input is generated chunk by chunk and the output counted and dropped,
so the peak RSS (``resource.getrusage``) shows what the format holds, whatever the size.
Prints one JSON object: MiB/s of each, their ratio, and the peak RSS before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from ekms_client import DataKey, Target
from ekms_client.envelope import DEFAULT_SEGMENT_SIZE
from ekms_client.files import decrypt_stream, encrypt_stream

MIB = 1 << 20
TARGET = Target.for_module("global.bench")


class LocalDataKeys:
    """A fake of the client's data-key calls: one fixed key, sealed as opaque bytes."""

    def __init__(self) -> None:
        self._key = DataKey(b"\x01bench-sealed-key", 1, os.urandom(32))

    def generate_data_key(self, target: Target, *, context: bytes = b"") -> DataKey:
        return self._key

    def decrypt_data_key(
        self, target: Target, sealed_key: bytes, *, context: bytes = b""
    ) -> DataKey:
        assert sealed_key == self._key.sealed_key
        return self._key


def _chunks(total: int, chunk: bytes) -> Iterator[bytes]:
    for _ in range(total // len(chunk)):
        yield chunk


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def envelope_round_trip(total: int, chunk: bytes) -> tuple[float, int]:
    keys = LocalDataKeys()
    start = time.perf_counter()
    sealed = encrypt_stream(keys, TARGET, _chunks(total, chunk))
    opened = sum(len(part) for part in decrypt_stream(keys, TARGET, sealed))
    return time.perf_counter() - start, opened


def raw_round_trip(total: int, chunk: bytes) -> tuple[float, int]:
    """The same chunks through AESGCM alone, in the same two-stage pipeline (one generator
    seals, the consumer opens), so both runs allocate alike; no header, counter or framing."""
    aead = AESGCM(os.urandom(32))
    nonce, aad = os.urandom(12), os.urandom(32)
    start = time.perf_counter()
    sealed = (aead.encrypt(nonce, part, aad) for part in _chunks(total, chunk))
    opened = sum(len(aead.decrypt(nonce, part, aad)) for part in sealed)
    return time.perf_counter() - start, opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=2048, help="stream size in MiB (2 GiB)")
    args = parser.parse_args()
    total = args.mib * MIB
    chunk = os.urandom(DEFAULT_SEGMENT_SIZE)
    rss_before = _peak_rss_mib()
    raw_seconds, raw_bytes = raw_round_trip(total, chunk)
    env_seconds, env_bytes = envelope_round_trip(total, chunk)
    assert raw_bytes == env_bytes == total
    raw_rate, env_rate = args.mib / raw_seconds, args.mib / env_seconds
    print(
        json.dumps(
            {
                "stream_mib": args.mib,
                "segment_bytes": DEFAULT_SEGMENT_SIZE,
                "raw_aes_gcm_mib_s": round(raw_rate, 1),
                "envelope_mib_s": round(env_rate, 1),
                "envelope_over_raw": round(env_rate / raw_rate, 3),
                "peak_rss_mib_before": round(rss_before, 1),
                "peak_rss_mib_after": round(_peak_rss_mib(), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
