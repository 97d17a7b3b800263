"""Ways to serve a batch, measured against each other in one process and one run (issue 16):
CPU µs per item for DecryptBatch and EncryptBatch of 1,000 x 64 B, and raw AES-256-GCM.

    uv run python -m bench.batch_variants              # prints a table, writes batch_variants.json
    uv run python -m bench.batch_variants --rounds 9   # more interleaved rounds

The variants, from the cipher outwards (each the best of ``--rounds`` interleaved rounds):

- ``aes_gcm.*``: the cipher alone on pre-split nonce and ciphertext, the AAD precomputed;
- ``domain.per_item``: ``DataKey.decrypt`` per item, a ``Ciphertext`` and the whole associated
  data built per item (what a permit did before); ``domain.open_many``: one call per batch,
  the associated-data prefix built once (``DataKey.open_many``);
- ``servicer.items``: the servicer as it was: an ``Item`` per entry, ``run_batch`` (an
  ``ItemResult`` per item), results filled in place with ``results.add(...)``;
- ``servicer.columns+add``: the columns path (``run_columns``) with results filled with
  ``results.add(...)``; ``servicer.columns``: the columns path with the results written as
  bytes and parsed once (what ``CryptoServicer`` does now);
- ``servicer.columns,gc_off``: the same with the cyclic GC off, for its share.

Every servicer figure includes parsing the request and serializing the response, not grpc.aio.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import cases
from bench.micro import _SECRET, _world
from bench.run import DEFAULT_OUT

ITEMS = 1000
SECONDS = 0.25


Variant = Callable[[], Awaitable[int]]


async def _cpu_us(fn: Variant, seconds: float) -> float:
    n, cpu0, t0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += await fn()
    return (time.process_time() - cpu0) / n * 1e6


def _sync(fn: Callable[[], int]) -> Variant:
    async def run() -> int:
        return fn()

    return run


def _batch(coro_fn: Callable[[], Awaitable[None]]) -> Variant:
    async def run() -> int:
        await coro_fn()
        return ITEMS

    return run


async def measure(rounds: int) -> dict[str, float]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

    from app.application.crypto import Item
    from app.application.targets import Target
    from app.bootstrap import running
    from app.domain import ciphertext as ct
    from app.domain.values import Caller
    from app.grpc.auth import _GRANT, Grant
    from app.grpc.servicer import _DECRYPT_BATCH, _ENCRYPT_BATCH, CryptoServicer, _opened, _sealed
    from app.infra.settings import Settings
    from app.infra.tokens import VerifiedToken

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            jwt_hs256_secret=_SECRET,  # type: ignore[arg-type]
            scheduler_enabled=False,
            log_level="WARNING",
        )
        async with running(settings) as container:
            await _world(container)
            caller = Caller("bench-app", frozenset({cases.APP_ROLE}))
            assert container.verifier is not None
            _GRANT.set(Grant(VerifiedToken(caller, 0.0, float("inf")), container.verifier))
            crypto = container.crypto
            servicer = CryptoServicer(crypto, max_batch_items=10_000)
            target = Target.of(table=cases.TABLE, column=cases.COLUMN)
            plain = [os.urandom(64) for _ in range(ITEMS)]
            sealed_items = await crypto.encrypt_batch(
                caller, [Item(target, p, cases.context(i)) for i, p in enumerate(plain)]
            )
            sealed = [(r.data or b"", cases.context(i)) for i, r in enumerate(sealed_items)]
            raw_dec = cases.decrypt_batch(sealed, ITEMS).requests[0]
            raw_enc = cases.encrypt_batch(64, ITEMS).requests[0]
            snap = await container.ctx.chain.snapshot()
            view = snap.modules_by_id[ct.parse(sealed[0][0]).header.module_id]
            data_key = container.ctx.chain.data_key(snap, view, view.active)  # type: ignore[arg-type]
            binding = target.binding
            blobs = [c for c, _ in sealed]
            contexts = [x for _, x in sealed]

            async def items_path(
                raw: bytes, request_type: Any, response_type: Any, rpc: Any
            ) -> None:
                request = request_type.FromString(raw)
                response = response_type()
                default = request.target
                from app.grpc.convert import TargetCache

                resolve = TargetCache(default).resolve

                def to_item(message: Any) -> Item:
                    own = message.target if message.HasField("target") else None
                    return Item(resolve(own), rpc.value(message), message.context)

                results = await crypto.run_batch(
                    rpc.operation, caller, request.items, to_item, max_items=10_000
                )
                add = response.results.add
                for message, result in zip(request.items, results, strict=True):
                    rpc.result_of(add, message, result, rpc.method)
                response.SerializeToString()

            async def columns_add(raw: bytes, request_type: Any, rpc: Any, make: Any) -> None:
                from app.application.crypto import ItemResult
                from app.grpc.columns import columns_of
                from app.grpc.convert import TargetCache

                request = request_type.FromString(raw)
                columns, messages = columns_of(
                    request.items, TargetCache(request.target), rpc.value
                )
                results = await crypto.run_columns(rpc.operation, caller, columns, max_items=10_000)
                response = (
                    pb.DecryptBatchResponse if make is _opened else pb.EncryptBatchResponse
                )()
                add = response.results.add
                for i, message in enumerate(messages):
                    data = results.data[i]
                    result = (
                        ItemResult(error=results.errors[i])
                        if data is None
                        else ItemResult(data=data, key_version=results.key_versions[i])
                    )
                    make(add, message, result, rpc.method)
                response.SerializeToString()

            async def columns(raw: bytes, request_type: Any, method: Any) -> None:
                (await method(request_type.FromString(raw), None)).SerializeToString()

            def per_item_domain() -> int:
                for blob, context in zip(blobs, contexts, strict=True):
                    parsed = ct.parse(blob)
                    data_key.decrypt(
                        ct.Ciphertext(parsed.header, blob[:22], parsed.body), binding, context
                    )
                return ITEMS

            def open_many() -> int:
                data_key.open_many(binding, blobs, contexts, [None] * ITEMS)
                return ITEMS

            aead = AESGCM(AESGCM.generate_key(bit_length=256))
            aad = ct.associated_data(bytes(22), binding, cases.context(42))
            pool = [
                (n := os.urandom(12), aead.encrypt(n, os.urandom(64), aad)) for _ in range(ITEMS)
            ]

            def aes_decrypt() -> int:
                for nonce, body in pool:
                    aead.decrypt(nonce, body, aad)
                return ITEMS

            value = os.urandom(64)

            def aes_encrypt() -> int:
                for _ in range(ITEMS):
                    nonce = os.urandom(12)
                    nonce + aead.encrypt(nonce, value, aad)
                return ITEMS

            dec, enc = pb.DecryptBatchRequest, pb.EncryptBatchRequest
            variants: dict[str, Variant] = {
                "aes_gcm.decrypt": _sync(aes_decrypt),
                "aes_gcm.encrypt": _sync(aes_encrypt),
                "domain.per_item.decrypt": _sync(per_item_domain),
                "domain.open_many.decrypt": _sync(open_many),
                "servicer.items.decrypt": _batch(
                    lambda: items_path(raw_dec, dec, pb.DecryptBatchResponse, _DECRYPT_BATCH)
                ),
                "servicer.items.encrypt": _batch(
                    lambda: items_path(raw_enc, enc, pb.EncryptBatchResponse, _ENCRYPT_BATCH)
                ),
                "servicer.columns+add.decrypt": _batch(
                    lambda: columns_add(raw_dec, dec, _DECRYPT_BATCH, _opened)
                ),
                "servicer.columns+add.encrypt": _batch(
                    lambda: columns_add(raw_enc, enc, _ENCRYPT_BATCH, _sealed)
                ),
                "servicer.columns.decrypt": _batch(
                    lambda: columns(raw_dec, dec, servicer.DecryptBatch)
                ),
                "servicer.columns.encrypt": _batch(
                    lambda: columns(raw_enc, enc, servicer.EncryptBatch)
                ),
            }
            best = {name: float("inf") for name in variants}
            best["servicer.columns,gc_off.decrypt"] = float("inf")
            for fn in variants.values():
                await fn()  # warm: the permits exist, the leases hold reservations
            for _ in range(rounds):
                for name, fn in variants.items():
                    best[name] = min(best[name], await _cpu_us(fn, SECONDS))
                gc.disable()
                try:
                    figure = await _cpu_us(variants["servicer.columns.decrypt"], SECONDS)
                finally:
                    gc.enable()
                best["servicer.columns,gc_off.decrypt"] = min(
                    best["servicer.columns,gc_off.decrypt"], figure
                )
            await container.ctx.audit.flush()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description="batch variants, CPU µs per item")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    import uvloop

    results = uvloop.run(measure(args.rounds))
    for name, value in results.items():
        print(f"{name:34s} {value:7.2f} CPU µs per item")
    for op in ("decrypt", "encrypt"):
        ratio = results[f"aes_gcm.{op}"] / results[f"servicer.columns.{op}"]
        print(f"{op}: servicer.columns vs raw AES-GCM per CPU-second: {ratio:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch_variants.json").write_text(
        json.dumps({"cpu_us_per_item": results}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
