"""CPU per item of the data plane in-process, without the network: before/after figures for
hot-path changes that the noisy end-to-end bench cannot resolve.

    uv run python -m bench.micro            # prints a table, writes bench/results/micro.json
    uv run python -m bench.micro --profile servicer.decrypt_batch   # + a pyinstrument profile

A real container (embedded SQLite, local KMS; the hot path never touches either once warm)
with the bench's module, Track policy and field configuration. Each figure is the best of
``REPEATS`` runs of ``time.process_time()`` over about ``SECONDS``:

- ``servicer.*``: the gRPC servicer called directly with the request bytes parsed and the
  response serialized (the interceptors and grpc.aio itself are not included);
- ``service.*``: ``CryptoService`` called directly;
- ``rest.*``: the FastAPI app through ``httpx.ASGITransport`` (middleware, auth, validation,
  routing; no uvicorn, no socket);
- ``aes_gcm.decrypt.64``: the cipher alone, for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import cases
from bench.inproc import AAD
from bench.run import DEFAULT_OUT

SECONDS = 0.6
_SECRET = "micro-bench-secret-0123456789abcdef0123"  # noqa: S105 - bench only
REPEATS = 3
ITEMS = 1000


_PROFILE: dict[str, Any] = {"name": None, "out": None}


class _StreamContext:
    """What the stream methods need of a grpc.aio context here: a done callback."""

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        pass  # the stream's own ``finally`` releases its slot


async def _best(fn: Callable[[], Awaitable[int]], name: str = "") -> float:
    """Best CPU µs per item over REPEATS runs (and a profile of it if asked for)."""
    await fn()
    wanted = _PROFILE["name"]
    if wanted and name.startswith(wanted):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001, async_mode="disabled")
        profiler.start()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 2 * SECONDS:
            await fn()
        profiler.stop()
        text = profiler.output_text(unicode=True, color=False, show_all=False)
        (_PROFILE["out"] / f"profile-micro-{name}.txt").write_text(text)
    best = float("inf")
    for _ in range(REPEATS):
        n, cpu0, t0 = 0, time.process_time(), time.perf_counter()
        while time.perf_counter() - t0 < SECONDS:
            n += await fn()
        best = min(best, (time.process_time() - cpu0) / n * 1e6)
    return best


async def _world(container: Any) -> None:
    from app.application.field_configs import FieldConfigInput, create_field_config
    from app.application.modules import ModuleInput, create_module
    from app.application.policies import PolicyInput, create_policy
    from app.domain.values import AccessResult, Caller, Operation, TargetType

    admin = Caller("bench-admin", frozenset({"ekms.admin", "ekms.key_manager"}))
    ctx = container.ctx
    await create_module(ctx, admin, ModuleInput(cases.MODULE))
    await create_policy(
        ctx,
        admin,
        cases.MODULE,
        PolicyInput(
            TargetType.ROLE,
            cases.APP_ROLE,
            frozenset({Operation.ENCRYPT, Operation.DECRYPT}),
            AccessResult.TRACK,
        ),
    )
    await create_field_config(ctx, admin, FieldConfigInput(cases.TABLE, cases.COLUMN, cases.MODULE))


async def measure() -> dict[str, float]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

    from app.application.crypto import Item
    from app.application.targets import Target
    from app.bootstrap import running
    from app.domain.values import Caller
    from app.grpc.auth import _GRANT, Grant
    from app.grpc.bench_echo import EchoServicer
    from app.grpc.gen.ekms.bench.v1 import echo_pb2
    from app.grpc.servicer import CryptoServicer
    from app.infra.settings import Settings
    from app.infra.tokens import VerifiedToken

    results: dict[str, float] = {}

    async def case(name: str, fn: Callable[[], Awaitable[int]]) -> None:
        results[name] = await _best(fn, name)

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
            if container.verifier is None:
                raise RuntimeError("the micro bench needs a token verifier")
            _GRANT.set(Grant(VerifiedToken(caller, 0.0, float("inf")), container.verifier))
            servicer = CryptoServicer(container.crypto, max_batch_items=10_000)
            crypto = container.crypto
            target = Target.of(table=cases.TABLE, column=cases.COLUMN)
            plain = [os.urandom(64) for _ in range(ITEMS)]
            enc_batch = [Item(target, p, cases.context(i)) for i, p in enumerate(plain)]
            sealed = [
                (r.data or b"", it.context)
                for r, it in zip(
                    await crypto.encrypt_batch(caller, enc_batch), enc_batch, strict=True
                )
            ]
            dec_batch = [Item(target, c, x) for c, x in sealed]

            def unary(method: Any, request_type: Any, raw: bytes) -> Callable[[], Awaitable[int]]:
                async def run() -> int:
                    for _ in range(100):
                        (await method(request_type.FromString(raw), None)).SerializeToString()
                    return 100

                return run

            def batch(
                method: Any, request_type: Any, raw: bytes, n: int
            ) -> Callable[[], Awaitable[int]]:
                async def run() -> int:
                    (await method(request_type.FromString(raw), None)).SerializeToString()
                    return n

                return run

            def stream(
                method: Any, request_type: Any, raws: list[bytes]
            ) -> Callable[[], Awaitable[int]]:
                async def requests() -> AsyncIterator[Any]:
                    for raw in raws:
                        yield request_type.FromString(raw)

                async def run() -> int:
                    async for response in method(requests(), _StreamContext()):
                        response.SerializeToString()
                    return len(raws)

                return run

            echo = EchoServicer()
            echo_raw = cases.echo(64).requests[0]
            await case("servicer.echo.64", unary(echo.Echo, echo_pb2.EchoRequest, echo_raw))
            await case(
                "servicer.encrypt.64",
                unary(servicer.Encrypt, pb.EncryptRequest, cases.encrypt(64).requests[0]),
            )
            await case(
                "servicer.decrypt.64",
                unary(servicer.Decrypt, pb.DecryptRequest, cases.decrypt(sealed).requests[0]),
            )
            await case(
                "servicer.encrypt_batch.1000x64",
                batch(
                    servicer.EncryptBatch,
                    pb.EncryptBatchRequest,
                    cases.encrypt_batch(64).requests[0],
                    ITEMS,
                ),
            )
            await case(
                "servicer.decrypt_batch.1000x64",
                batch(
                    servicer.DecryptBatch,
                    pb.DecryptBatchRequest,
                    cases.decrypt_batch(sealed).requests[0],
                    ITEMS,
                ),
            )
            stream_enc = [
                pb.EncryptItem(
                    id=str(i), target=cases.field_target(), plaintext=p, context=cases.context(i)
                ).SerializeToString()
                for i, p in enumerate(plain)
            ]
            stream_dec = [
                pb.DecryptItem(
                    id=str(i), target=cases.field_target(), ciphertext=c, context=x
                ).SerializeToString()
                for i, (c, x) in enumerate(sealed)
            ]
            await case(
                "servicer.encrypt_stream.64",
                stream(servicer.EncryptStream, pb.EncryptItem, stream_enc),
            )
            await case(
                "servicer.decrypt_stream.64",
                stream(servicer.DecryptStream, pb.DecryptItem, stream_dec),
            )

            async def svc_encrypt() -> int:
                await crypto.encrypt_batch(caller, enc_batch)
                return ITEMS

            async def svc_decrypt() -> int:
                await crypto.decrypt_batch(caller, dec_batch)
                return ITEMS

            async def svc_encrypt_one() -> int:
                for item in enc_batch[:100]:
                    await crypto.encrypt(caller, item)
                return 100

            await case("service.encrypt_batch.64", svc_encrypt)
            await case("service.decrypt_batch.64", svc_decrypt)
            await case("service.encrypt.64 (single)", svc_encrypt_one)
            await _rest(case, container, sealed)
            await container.ctx.audit.flush()

    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    pool = [(n := os.urandom(12), aead.encrypt(n, os.urandom(64), AAD)) for _ in range(64)]

    async def aes() -> int:
        for nonce, sealed_value in pool:
            aead.decrypt(nonce, sealed_value, AAD)
        return len(pool)

    await case("aes_gcm.decrypt.64", aes)
    return results


async def _rest(
    case: Callable[[str, Callable[[], Awaitable[int]]], Awaitable[None]],
    container: Any,
    sealed: list[tuple[bytes, bytes]],
) -> None:
    import httpx

    from app.bootstrap import build_rest_app
    from app.infra.system import SystemClock
    from app.infra.tokens import mint_dev_token

    token = mint_dev_token(_SECRET, sub="bench-app", roles=[cases.APP_ROLE], clock=SystemClock())
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    transport = httpx.ASGITransport(app=build_rest_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://micro") as http:
        for name, workload in (
            ("rest.encrypt.64", cases.rest_encrypt(64)),
            ("rest.decrypt.64", cases.rest_decrypt(sealed)),
        ):
            body = workload.requests[0]

            async def run(path: str = workload.method, body: bytes = body) -> int:
                for _ in range(20):
                    response = await http.post(path, content=body, headers=headers)
                    if response.status_code != 200:
                        raise RuntimeError(response.text)
                return 20

            await case(name, run)


def main() -> None:
    parser = argparse.ArgumentParser(description="in-process CPU per item of the data plane")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--label", default="", help="a label stored with the figures")
    parser.add_argument("--profile", help="also profile the cases starting with this name")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    _PROFILE.update(name=args.profile, out=args.out)
    import uvloop

    results = uvloop.run(measure())
    for name, value in results.items():
        print(f"{name:36s} {value:8.2f} CPU µs per item")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "micro.json").write_text(
        json.dumps({"label": args.label, "cpu_us_per_item": results}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
