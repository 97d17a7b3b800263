"""Use cases for encrypted field configurations (``table.column`` -> module)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from app.application.context import AppContext
from app.application.lookups import require_module
from app.application.ports import UnitOfWork
from app.domain.errors import AlreadyExists, NotFound, Reason
from app.domain.module import EncryptedFieldConfig
from app.domain.values import Caller, FieldRef


@dataclass(frozen=True, slots=True)
class FieldConfigInput:
    """What a caller may set on an encrypted field configuration."""

    table: str
    column: str
    module: str
    active: bool = True


async def _require(uow: UnitOfWork, config_id: uuid.UUID) -> EncryptedFieldConfig:
    config = await uow.fields.get(config_id)
    if config is None:
        raise NotFound(
            f"field configuration {config_id} does not exist", reason=Reason.FIELD_CONFIG_NOT_FOUND
        )
    return config


async def create_field_config(
    ctx: AppContext, caller: Caller, data: FieldConfigInput
) -> EncryptedFieldConfig:
    """Bind ``table.column`` to a module; audited."""
    ref = FieldRef(data.table, data.column)
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        module = await require_module(uow, data.module)
        if await uow.fields.find(ref.table, ref.column) is not None:
            raise AlreadyExists(f"field {ref} already has a configuration")
        config = EncryptedFieldConfig(
            id=ctx.rng.uuid(),
            table=ref.table,
            column=ref.column,
            module_id=module.id,
            created_at=now,
            updated_at=now,
            active=data.active,
        )
        await uow.fields.add(config)
        event = ctx.event(caller, "field.create", module=module.name, target=str(ref))
        await ctx.commit_audited(uow, event)
    await ctx.changes.publish("field")
    return config


async def list_field_configs(ctx: AppContext) -> Sequence[EncryptedFieldConfig]:
    """Every encrypted field configuration."""
    async with ctx.uow() as uow:
        return await uow.fields.list()


async def get_field_config(ctx: AppContext, config_id: uuid.UUID) -> EncryptedFieldConfig:
    """One field configuration, or ``NotFound(FIELD_CONFIG_NOT_FOUND)``."""
    async with ctx.uow() as uow:
        return await _require(uow, config_id)


async def update_field_config(
    ctx: AppContext,
    caller: Caller,
    config_id: uuid.UUID,
    *,
    module: str | None,
    active: bool | None,
) -> EncryptedFieldConfig:
    """Re-point a field at another module or (de)activate it. Existing ciphertexts name their
    module, so they still decrypt only through the module that made them."""
    async with ctx.uow() as uow:
        config = await _require(uow, config_id)
        if module is not None:
            config.module_id = (await require_module(uow, module)).id
        if active is not None:
            config.active = active
        config.updated_at = ctx.clock.now()
        await uow.fields.save(config)
        details: dict[str, object] = {"active": config.active}
        target = f"{config.table}.{config.column}"
        event = ctx.event(caller, "field.update", module=module, target=target, details=details)
        await ctx.commit_audited(uow, event)
    await ctx.changes.publish("field")
    return config


async def delete_field_config(ctx: AppContext, caller: Caller, config_id: uuid.UUID) -> None:
    """Remove a field configuration; audited."""
    async with ctx.uow() as uow:
        config = await _require(uow, config_id)
        await uow.fields.delete(config_id)
        event = ctx.event(caller, "field.delete", target=f"{config.table}.{config.column}")
        await ctx.commit_audited(uow, event)
    await ctx.changes.publish("field")
