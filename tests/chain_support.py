"""Setting up a key chain in integration tests: configure against an external key, create a
module and a policy granting role ``svc`` every operation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from app.application.configuration import ConfigInput, configure_ekms
from app.application.context import AppContext
from app.application.modules import ModuleInput, create_module
from app.application.policies import PolicyInput, create_policy
from app.domain.values import AccessResult, Caller, KmsProvider, Operation, TargetType
from app.infra.settings import Settings
from tests.fixtures.kms import AWS_TEST_REGION

ADMIN = Caller("admin", frozenset({"ekms.admin"}))
APP = Caller("svc", frozenset({"svc"}))


async def open_module(ctx: AppContext, provider: KmsProvider, key_id: str, module: str) -> None:
    """Configure ekms on ``key_id`` and open ``module`` to role ``svc`` (Track)."""
    await configure_ekms(ctx, ADMIN, ConfigInput(provider, key_id))
    await grant_module(ctx, module)


async def grant_module(ctx: AppContext, module: str) -> None:
    """Create ``module`` on the configured chain, open to role ``svc`` (Track)."""
    await create_module(ctx, ADMIN, ModuleInput(module))
    await create_policy(
        ctx,
        ADMIN,
        module,
        PolicyInput(TargetType.ROLE, "svc", frozenset(Operation), AccessResult.TRACK),
    )


async def make_sync_due(ctx: AppContext) -> None:
    """Move the last sync an hour back, so the next scheduler tick runs the sync."""
    async with ctx.uow() as uow:
        config = await uow.config.get()
        assert config is not None and config.last_sync_at is not None
        config.last_sync_at -= timedelta(hours=1)
        await uow.config.save(config)
        await uow.commit()


def node_settings(pg_url: str, tmp_path: Path, *, secret: str, **provider: Any) -> Settings:
    """A node on Postgres with the given provider settings, no scheduler, no metrics."""
    return Settings(
        **provider,
        database_url=pg_url,
        data_dir=tmp_path,
        jwt_hs256_secret=secret,
        scheduler_enabled=False,
        metrics_port=None,
    )


def aws_settings(pg_url: str, url: str, tmp_path: Path, *, secret: str, **extra: Any) -> Settings:
    """A node on Postgres and the AWS KMS at ``url`` (moto or a gate), no scheduler, no metrics."""
    return node_settings(
        pg_url,
        tmp_path,
        secret=secret,
        **extra,
        kms_provider="aws",
        aws_endpoint_url=url,
        allow_insecure_kms_endpoint=True,
        aws_region=AWS_TEST_REGION,
    )
