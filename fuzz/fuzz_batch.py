"""Atheris target: gRPC ``DecryptBatch`` request decoding and the servicer's translation.

Arbitrary bytes are parsed as a ``DecryptBatchRequest`` (bytes that are no such message are
grpc's to refuse, and skipped here); a message that parses goes to the real
``CryptoServicer.DecryptBatch`` of a real container (SQLite, the local KMS, one module, a field
configuration, a policy), called as an authenticated caller, exactly as the server would.

Allowed outcomes: a response with one result per item, in order, each either OK with the
plaintext it was sealed with, or a mapped status (never INTERNAL); or, for the whole call, an
``EkmsError`` that the boundary maps (a batch over the item limit, a bad default target).
Anything else is a crash. Seeds: genuine batches (module and field targets, contexts, a bad
item, a default target).

    uv run python fuzz/fuzz_batch.py -max_total_time=60 [CORPUS_DIR]
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import atheris
import grpc

with atheris.instrument_imports(include=["app"]):
    from google.protobuf.message import DecodeError

    from app.application.crypto import Item
    from app.application.field_configs import FieldConfigInput, create_field_config
    from app.application.modules import ModuleInput, create_module
    from app.application.policies import PolicyInput, create_policy
    from app.application.targets import Target
    from app.bootstrap import Container, running
    from app.domain.errors import EkmsError
    from app.domain.values import AccessResult, Algorithm, Caller, Operation, TargetType
    from app.grpc.auth import AuthInterceptor
    from app.grpc.errors import code_for
    from app.grpc.gen.ekms.v1 import crypto_pb2 as pb
    from app.grpc.servicer import CryptoServicer
    from app.infra.settings import Settings
    from app.infra.system import SystemClock
    from app.infra.tokens import mint_dev_token

from fuzz._common import prepare_argv

SECRET = "fuzz-batch-hs256-secret-0123456789abcdef"  # noqa: S105 - a test secret
ADMIN = Caller("fuzz-admin", frozenset({"ekms.admin", "ekms.key_manager"}))
APP_ROLE = "svc"
MAX_ITEMS = 64
MODULES = {"global.fuzz": Algorithm.AES_256_GCM, "global.fuzzsiv": Algorithm.AES_256_SIV}
INTERNAL = grpc.StatusCode.INTERNAL.value[0]


class World:
    """A running container on one event loop, kept for the whole fuzzing session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.workdir = Path(tempfile.mkdtemp(prefix="ekms-fuzz-batch-"))
        atexit.register(shutil.rmtree, self.workdir, ignore_errors=True)
        self.stack = contextlib.AsyncExitStack()
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{self.workdir / 'ekms.db'}",
            auto_migrate=True,
            kms_provider="local",
            local_root_key=base64.b64encode(os.urandom(32)).decode(),
            data_dir=self.workdir,
            jwt_hs256_secret=SECRET,
            scheduler_enabled=False,
            audit_flush_seconds=60,
            max_batch_items=MAX_ITEMS,
            log_level="CRITICAL",
        )
        self.container: Container = self.loop.run_until_complete(
            self.stack.enter_async_context(running(settings))
        )
        self.servicer = CryptoServicer(self.container.crypto, max_batch_items=MAX_ITEMS)
        self.auth = AuthInterceptor(self.container.verifier)
        token = mint_dev_token(SECRET, sub="fuzz-svc", roles=[APP_ROLE], clock=SystemClock())
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.sealed: dict[bytes, bytes] = {}  # ciphertext -> plaintext
        self.seed_requests = self.loop.run_until_complete(self._populate())

    async def _populate(self) -> list[bytes]:
        ctx = self.container.ctx
        for name, algorithm in MODULES.items():
            await create_module(ctx, ADMIN, ModuleInput(name, algorithm=algorithm))
            await create_policy(
                ctx,
                ADMIN,
                name,
                PolicyInput(TargetType.ROLE, APP_ROLE, frozenset(Operation), AccessResult.TRACK),
            )
        await create_field_config(ctx, ADMIN, FieldConfigInput("employees", "iban", "global.fuzz"))
        app = Caller("fuzz-svc", frozenset({APP_ROLE}))
        targets = {
            "module": (Target(module="global.fuzz"), pb.Target(module="global.fuzz")),
            "siv": (Target(module="global.fuzzsiv"), pb.Target(module="global.fuzzsiv")),
            "field": (
                Target.of(table="employees", column="iban"),
                pb.Target(field=pb.Field(table="employees", column="iban")),
            ),
        }
        items: list[pb.DecryptItem] = []
        for n, (name, (target, message)) in enumerate(targets.items()):
            for context in (b"", b"record-%d" % n):
                plaintext = b"value %d %s" % (n, context)
                result = await self.container.crypto.encrypt(app, Item(target, plaintext, context))
                if result.data is None:
                    raise RuntimeError("the seed encryption returned nothing")
                self.sealed[result.data] = plaintext
                items.append(
                    pb.DecryptItem(
                        id=f"{name}{n}", target=message, ciphertext=result.data, context=context
                    )
                )
        seeds = [
            pb.DecryptBatchRequest(items=items),
            pb.DecryptBatchRequest(
                target=targets["module"][1],
                items=[
                    pb.DecryptItem(id=i.id, ciphertext=i.ciphertext, context=i.context)
                    for i in items[:2]
                ],
            ),
            pb.DecryptBatchRequest(
                items=[*items[:1], pb.DecryptItem(id="bad", ciphertext=b"\x01")]
            ),
            pb.DecryptBatchRequest(target=pb.Target(module="Bad Name"), items=items[:1]),
            pb.DecryptBatchRequest(),
        ]
        return [s.SerializeToString() for s in seeds]

    async def call(self, request: pb.DecryptBatchRequest) -> pb.DecryptBatchResponse:
        """Authenticate as the server's interceptor does, then the servicer, in one task."""

        async def continuation(_: Any) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(self.servicer.DecryptBatch)

        details = CallDetails("/ekms.v1.Crypto/DecryptBatch", self.metadata)
        await self.auth.intercept_service(continuation, details)
        return await self.servicer.DecryptBatch(request, None)


@dataclass(frozen=True)
class CallDetails:
    """What grpc hands an interceptor: the method and the request metadata."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


WORLD: World | None = None


def world() -> World:
    global WORLD
    if WORLD is None:
        WORLD = World()
    return WORLD


def test_one_input(data: bytes) -> None:
    w = world()
    try:
        request = pb.DecryptBatchRequest.FromString(data)
    except DecodeError:
        return  # not a message: grpc refuses it before any ekms code runs
    try:
        response = w.loop.run_until_complete(w.call(request))
    except EkmsError as exc:
        if code_for(exc) is None:
            raise AssertionError(f"an unmapped error: {exc!r}") from exc
        return
    if len(response.results) != len(request.items):
        raise AssertionError("not one result per item")
    for item, result in zip(request.items, response.results, strict=True):
        if result.id != item.id:
            raise AssertionError("results out of order")
        if result.status.code == 0:
            expected = w.sealed.get(item.ciphertext)
            if expected is None or result.plaintext != expected:
                raise AssertionError("a ciphertext that was never sealed decrypted")
        elif result.status.code == INTERNAL:
            raise AssertionError(f"an item ended INTERNAL: {result.status.message}")


def main() -> None:
    argv = prepare_argv("batch", world().seed_requests)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
