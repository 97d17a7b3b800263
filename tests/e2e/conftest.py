"""End-to-end world for the gRPC server: the real container (Postgres, moto's KMS server over
HTTP) and the real gRPC server on port 0, reached through a real channel.

- ``ekms``: a configured instance (``Ekms``) with its stub; modules, policies and field configs
  created through the application use cases (see ``WORLD`` below); stopped afterwards.
- ``Ekms.auth(sub, *roles)``: call metadata with a fresh dev token for that caller.
- ``error_info(err)``: the code and ``ErrorInfo.reason`` of a failed call (from the
  ``grpc-status-details-bin`` trailer); ``item_reason(status)`` the same for a per-item status.

The world (module default: Reject):

    global.billing (AES-256-GCM)   role billing: Track encrypt/decrypt/rewrap
                                   role writer:  Track encrypt          (no decrypt)
                                   role blocked: Reject encrypt
                                   role auditor: Reject decrypt; Track decrypt for subject
                                                 "carol" (Track wins over Reject)
                                   subject mallory: StrictReject encrypt/decrypt (beats Track)
    global.draft  (draft)          role billing: Track all
    field employees.salary   -> global.billing (active)
    field employees.legacy   -> global.billing (inactive)
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from app.application.configuration import ConfigInput, configure_ekms
from app.application.field_configs import FieldConfigInput, create_field_config
from app.application.modules import ModuleInput, create_module
from app.application.policies import PolicyInput, create_policy
from app.bootstrap import Container, build_grpc_server, grpc_options, running
from app.domain.values import (
    AccessResult,
    Caller,
    KmsProvider,
    ModuleState,
    Operation,
    TargetType,
)
from app.grpc.server import GrpcOptions, GrpcServer
from app.infra.settings import Settings
from app.infra.system import SystemClock
from app.infra.tokens import mint_dev_token

JWT_SECRET = "e2e-hs256-secret-that-is-long-enough-0123456789"
JWT_ISSUER = "https://issuer.ekms.test"
JWT_AUDIENCE = "ekms"
ADMIN = Caller("admin", frozenset({"ekms.admin", "ekms.key_manager"}))
BILLING = "global.billing"
DRAFT = "global.draft"
ALL_OPS = frozenset(Operation)


class PastClock:
    """A clock ``seconds`` in the past, to mint tokens that have already expired."""

    def __init__(self, seconds: float) -> None:
        self._at = datetime.now(UTC) - timedelta(seconds=seconds)

    def now(self) -> datetime:
        return self._at

    def monotonic(self) -> float:
        return 0.0


def mint(sub: str, *roles: str, clock: object | None = None, **overrides: object) -> str:
    claims: dict[str, object] = {"issuer": JWT_ISSUER, "audience": JWT_AUDIENCE, **overrides}
    return mint_dev_token(
        JWT_SECRET,
        sub=sub,
        roles=roles,
        ttl_seconds=600,
        clock=clock or SystemClock(),  # type: ignore[arg-type]
        **claims,  # type: ignore[arg-type]
    )


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Ekms:
    container: Container
    server: GrpcServer
    address: str
    channel: grpc.aio.Channel
    stub: pb_grpc.CryptoStub

    def auth(self, sub: str, *roles: str) -> tuple[tuple[str, str], ...]:
        return bearer(mint(sub, *roles))

    def new_channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)


def e2e_settings(
    pg_url: str, moto_server: str, region: str, data_dir: Path, **extra: object
) -> Settings:
    values: dict[str, object] = {
        "database_url": pg_url,
        "auto_migrate": False,
        "kms_provider": "aws",
        "aws_endpoint_url": moto_server,
        "allow_insecure_kms_endpoint": True,
        "aws_region": region,
        "data_dir": data_dir,
        "jwt_hs256_secret": JWT_SECRET,
        "jwt_issuer": JWT_ISSUER,
        "jwt_audience": JWT_AUDIENCE,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "http_port": 0,
        "metrics_port": 0,
        "max_batch_items": 50,
        "grpc_max_message_bytes": 256 * 1024,
        "log_json": False,
        "scheduler_enabled": False,  # the tests run the sync themselves, when they mean to
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


async def build_world(container: Container, kms_key: str) -> None:
    ctx = container.ctx
    await configure_ekms(ctx, ADMIN, ConfigInput(KmsProvider.AWS, kms_key))
    await create_module(ctx, ADMIN, ModuleInput(BILLING))
    await create_module(ctx, ADMIN, ModuleInput(DRAFT, state=ModuleState.DRAFT))
    policies = [
        (BILLING, TargetType.ROLE, "billing", ALL_OPS, AccessResult.TRACK),
        (BILLING, TargetType.ROLE, "writer", {Operation.ENCRYPT}, AccessResult.TRACK),
        (BILLING, TargetType.ROLE, "blocked", {Operation.ENCRYPT}, AccessResult.REJECT),
        (BILLING, TargetType.ROLE, "auditor", {Operation.DECRYPT}, AccessResult.REJECT),
        (BILLING, TargetType.SUBJECT, "carol", {Operation.DECRYPT}, AccessResult.TRACK),
        (
            BILLING,
            TargetType.SUBJECT,
            "mallory",
            {Operation.ENCRYPT, Operation.DECRYPT},
            AccessResult.STRICT_REJECT,
        ),
        (DRAFT, TargetType.ROLE, "billing", ALL_OPS, AccessResult.TRACK),
    ]
    for module, target_type, target, operations, result in policies:
        await create_policy(
            ctx, ADMIN, module, PolicyInput(target_type, target, frozenset(operations), result)
        )
    await create_field_config(ctx, ADMIN, FieldConfigInput("employees", "salary", BILLING))
    await create_field_config(
        ctx, ADMIN, FieldConfigInput("employees", "legacy", BILLING, active=False)
    )


@pytest.fixture
def e2e_options() -> dict[str, object]:
    """Overrides of the ``GrpcOptions`` a test's server is built with."""
    return {}


@pytest.fixture
async def ekms(
    pg_url: str,
    moto_server: str,
    aws_env: str,
    kms_key: str,
    tmp_path: Path,
    e2e_options: dict[str, object],
) -> AsyncIterator[Ekms]:
    settings = e2e_settings(pg_url, moto_server, aws_env, tmp_path)
    async with running(settings) as container:
        await build_world(container, kms_key)
        options: GrpcOptions = dataclasses.replace(grpc_options(settings), **e2e_options)  # type: ignore[arg-type]
        server = build_grpc_server(container, options)
        port = await server.start()
        address = f"127.0.0.1:{port}"
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                yield Ekms(container, server, address, channel, pb_grpc.CryptoStub(channel))
        finally:
            await server.stop(0)


# --- reading errors ------------------------------------------------------------------------------


def _reason(status: status_pb2.Status | None) -> str | None:
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            assert info.domain == "ekms"
            return str(info.reason)
    return None


def error_info(err: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str | None]:
    """The code of a failed call and the reason in its rich status (``None`` if it has none)."""
    return err.code(), _reason(rpc_status.from_call(err))


def item_reason(status: status_pb2.Status) -> tuple[grpc.StatusCode, str | None]:
    code = next(c for c in grpc.StatusCode if c.value[0] == status.code)
    return code, _reason(status)


def module_target(name: str = BILLING) -> pb.Target:
    return pb.Target(module=name)


def field_target(table: str = "employees", column: str = "salary") -> pb.Target:
    return pb.Target(field=pb.Field(table=table, column=column))


async def failure(call: object) -> tuple[grpc.StatusCode, str | None]:
    """The code and reason of a call that must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return error_info(err.value)


async def outcome(call: object) -> tuple[grpc.StatusCode, str | None]:
    """``(OK, None)`` for a call that succeeds, else its code and reason."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return error_info(err)
    return grpc.StatusCode.OK, None
