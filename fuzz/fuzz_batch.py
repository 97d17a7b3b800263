"""Atheris target: gRPC ``DecryptBatch`` from raw request bytes to the response, without a
socket: the same method handler and interceptors as ``GrpcServer`` (the boundary, which parses
the request and maps errors to statuses, then authentication, then the real
``CryptoServicer.DecryptBatch``) on a real container (SQLite, the local KMS, two modules, a
field configuration, policies), called with a genuine bearer token.

Allowed outcomes: a response with one result per item, in order, each either OK with the
plaintext it was sealed with, or a mapped status (never INTERNAL or UNKNOWN); or the whole call
ended with a mapped status (bytes that are no message: INVALID_ARGUMENT; a batch over the item
limit; a bad default target). Anything else is a crash. Seeds: genuine batches (module and
field targets, contexts, a bad item, a default target).

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
    from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
    from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc

    from app.application.crypto import Item
    from app.application.field_configs import FieldConfigInput, create_field_config
    from app.application.modules import ModuleInput, create_module
    from app.application.policies import PolicyInput, create_policy
    from app.application.targets import Target
    from app.bootstrap import Container, running
    from app.domain.values import AccessResult, Algorithm, Caller, Operation, TargetType
    from app.grpc.auth import AuthInterceptor
    from app.grpc.boundary import BoundaryInterceptor
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
UNMAPPED = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


class Aborted(Exception):  # noqa: N818 - what the call did, not an error of ours
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self.code = code


class CallContext:
    """The part of ``grpc.aio.ServicerContext`` the boundary uses: aborting with a status."""

    async def abort_with_status(self, status: grpc.Status) -> None:
        raise Aborted(status.code)

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code)

    def code(self) -> grpc.StatusCode | None:
        return None


class MethodTable:
    """Stands in for the grpc server the generated code registers the Crypto methods on."""

    def __init__(self) -> None:
        self.methods: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        return None

    def add_registered_method_handlers(self, service: str, methods: dict[str, Any]) -> None:
        self.methods.update(methods)


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
        table = MethodTable()
        pb_grpc.add_CryptoServicer_to_server(  # type: ignore[no-untyped-call]
            CryptoServicer(self.container.crypto, max_batch_items=MAX_ITEMS), table
        )
        self.method = table.methods["DecryptBatch"]
        # The order GrpcServer gives them: the boundary outermost, then authentication.
        self.boundary = BoundaryInterceptor()
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

    async def call(self, raw: bytes) -> pb.DecryptBatchResponse:
        """One call through the interceptors and the handler, in one task (the caller lives in
        a context variable, as in the server)."""
        details = CallDetails("/ekms.v1.Crypto/DecryptBatch", self.metadata)

        async def lookup(_: Any) -> grpc.RpcMethodHandler:
            return self.method

        async def authenticated(d: Any) -> grpc.RpcMethodHandler:
            return await self.auth.intercept_service(lookup, d)

        handler = await self.boundary.intercept_service(authenticated, details)
        response: pb.DecryptBatchResponse = await handler.unary_unary(raw, CallContext())
        return response


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
        response = w.loop.run_until_complete(w.call(data))
    except Aborted as stop:
        if stop.code in UNMAPPED:
            raise AssertionError(f"the call ended {stop.code.name}") from None
        return
    request = pb.DecryptBatchRequest.FromString(data)  # it parsed: the call was not refused
    response.SerializeToString()
    if len(response.results) != len(request.items):
        raise AssertionError("not one result per item")
    for item, result in zip(request.items, response.results, strict=True):
        if result.id != item.id:
            raise AssertionError("results out of order")
        if result.status.code == 0:
            expected = w.sealed.get(item.ciphertext)
            if expected is None or result.plaintext != expected:
                raise AssertionError("a ciphertext that was never sealed decrypted")
        elif result.status.code in (INTERNAL, grpc.StatusCode.UNKNOWN.value[0]):
            raise AssertionError(f"an item ended {result.status.code}: {result.status.message}")


def main() -> None:
    argv = prepare_argv("batch", world().seed_requests)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
