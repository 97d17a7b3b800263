"""In-process ceilings on one core: raw AES-256-GCM, and the AWS Encryption SDK for Python.

- ``aes_gcm``: ``cryptography``'s AESGCM on the same values, with a fresh 96-bit nonce per
  encrypt and associated data of the size ekms binds (header, field binding, record context):
  the cipher's ceiling, no service around it.
- ``aws_sdk``: ``aws_encryption_sdk`` (v4) ``EncryptionSDKClient`` with a
  ``CachingCryptoMaterialsManager`` (``LocalCryptoMaterialsCache``) over a raw AES-256 wrapping
  key (``RawMasterKey``): no KMS and no network at all, so this is the SDK's best case. The
  suite is ``AES_256_GCM_HKDF_SHA512_COMMIT_KEY`` (key commitment, no ECDSA signature: the
  closest to what ekms does); ``aws_sdk_signed`` is the SDK's default suite (ECDSA P-384 per
  message, which the cache cannot amortise), for reference.

Each case runs single-threaded for ``seconds``: ops/s from an untimed loop, CPU seconds from
``time.process_time()``, latency percentiles from a separate, individually timed loop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# ekms' associated data: 22-byte header, u16 + "field:employees.salary", u32 + context.
AAD = b"\x01" * 22 + b"\x00\x16field:employees.salary" + b"\x00\x00\x00\x0arow-000042"


@dataclass
class InprocResult:
    case: str
    ops: int
    seconds: float
    cpu_seconds: float
    latencies: list[float]

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds

    @property
    def cpu_us_per_op(self) -> float:
        return self.cpu_seconds / self.ops * 1e6


def _measure(case: str, op: Callable[[int], Any], seconds: float) -> InprocResult:
    for i in range(200):  # warm-up
        op(i)
    ops, cpu0, t0 = 0, time.process_time(), time.perf_counter()
    deadline = t0 + seconds
    while True:
        for i in range(ops, ops + 256):
            op(i)
        ops += 256
        if time.perf_counter() >= deadline:
            break
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    lat: list[float] = []
    timer = time.perf_counter
    for i in range(min(ops, 20_000)):
        started = timer()
        op(i)
        lat.append(timer() - started)
    return InprocResult(case, ops, wall, cpu, lat)


def aes_gcm(size: int, seconds: float) -> list[InprocResult]:
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    value = os.urandom(size)
    pool = [(n := os.urandom(12), aead.encrypt(n, value, AAD)) for _ in range(64)]

    def encrypt(_: int) -> bytes:
        nonce = os.urandom(12)
        return nonce + aead.encrypt(nonce, value, AAD)

    def decrypt(i: int) -> bytes:
        nonce, sealed = pool[i & 63]
        return aead.decrypt(nonce, sealed, AAD)

    return [
        _measure(f"aes_gcm.encrypt.{size}", encrypt, seconds),
        _measure(f"aes_gcm.decrypt.{size}", decrypt, seconds),
    ]


def _sdk(signed: bool) -> tuple[Any, Any, Any]:
    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import (
        Algorithm,
        CommitmentPolicy,
        EncryptionKeyType,
        WrappingAlgorithm,
    )
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
    from aws_encryption_sdk.key_providers.raw import RawMasterKey

    master_key = RawMasterKey(
        provider_id="ekms-bench",
        key_id=b"bench-wrapping-key",
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=os.urandom(32),
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        ),
    )
    cmm = aws_encryption_sdk.CachingCryptoMaterialsManager(
        master_key_provider=master_key,
        cache=aws_encryption_sdk.LocalCryptoMaterialsCache(capacity=100),
        max_age=600.0,
        max_messages_encrypted=2**32,
    )
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    suite = (
        Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
        if signed
        else Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    )
    return client, cmm, suite


def aws_sdk(size: int, seconds: float, *, signed: bool = False) -> list[InprocResult]:
    client, cmm, suite = _sdk(signed)
    value = os.urandom(size)
    context = {"record": "row-000042", "field": "employees.salary"}
    pool = [
        client.encrypt(
            source=value, materials_manager=cmm, encryption_context=context, algorithm=suite
        )[0]
        for _ in range(16)
    ]

    def encrypt(_: int) -> bytes:
        sealed: bytes = client.encrypt(
            source=value, materials_manager=cmm, encryption_context=context, algorithm=suite
        )[0]
        return sealed

    def decrypt(i: int) -> bytes:
        plain: bytes = client.decrypt(source=pool[i & 15], materials_manager=cmm)[0]
        return plain

    name = "aws_sdk_signed" if signed else "aws_sdk"
    return [
        _measure(f"{name}.encrypt.{size}", encrypt, seconds),
        _measure(f"{name}.decrypt.{size}", decrypt, seconds),
    ]


def run_all(seconds: float, sizes: tuple[int, ...] = (64, 1024)) -> list[InprocResult]:
    results: list[InprocResult] = []
    for size in sizes:
        results += aes_gcm(size, seconds)
        results += aws_sdk(size, seconds)
    results += aws_sdk(64, seconds / 2, signed=True)
    return results


def percentiles(latencies: list[float] | Any) -> tuple[float, float]:
    if len(latencies) == 0:
        return 0.0, 0.0
    p50, p99 = np.percentile(np.asarray(latencies), [50, 99])
    return float(p50), float(p99)
