"""Use cases for crypto modules and their key versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from app.application.context import AppContext
from app.application.erasure import erase_dead_rows
from app.application.kek_mint import new_module_key
from app.application.lookups import require_config, require_module
from app.application.module_wrap import (
    check_wrapping,
    plan_wrap_move,
    rewrap_module_keys,
    wrapping_kek,
)
from app.application.ports import KeyStore, UnitOfWork
from app.domain.errors import AlreadyExists, Conflict, NotFound, Reason
from app.domain.keys import KeyEncryptionKey
from app.domain.module import CryptoModule, ModuleKey
from app.domain.values import AccessResult, Algorithm, Caller, KeyState, ModuleState


@dataclass(frozen=True, slots=True)
class ModuleInput:
    """What a caller may set when creating a module."""

    name: str
    algorithm: Algorithm = Algorithm.AES_256_GCM
    external_wrap: bool = True
    default_access: AccessResult = AccessResult.REJECT
    state: ModuleState = ModuleState.PUBLISHED
    description: str = ""
    rotation_period: timedelta | None = None
    destroy_deactivated_after: timedelta | None = None


class KeyAction(StrEnum):
    """The lifecycle actions on a key version."""

    REVOKE = "revoke"
    SUSPEND = "suspend"
    RESUME = "resume"
    DESTROY = "destroy"


async def _kek_of(ctx: AppContext, caller: Caller, name: str) -> KeyEncryptionKey:
    """The KEK module ``name``'s new DEKs go under (``check_wrapping`` confirms it in the
    transaction)."""
    async with ctx.uow() as uow:
        module = await require_module(uow, name)
    return await wrapping_kek(ctx, caller, module)


async def create_module(ctx: AppContext, caller: Caller, data: ModuleInput) -> CryptoModule:
    """A new module with its first DEK (version 1, Active) wrapped under the external chain's
    KEK, or under the local KEK with ``external_wrap=false`` (created on first need)."""
    now = ctx.clock.now()
    module = CryptoModule(
        id=ctx.rng.uuid(),
        name=data.name,
        algorithm=data.algorithm,
        created_at=now,
        updated_at=now,
        external_wrap=data.external_wrap,
        default_access=data.default_access,
        state=data.state,
        description=data.description,
        rotation_period=data.rotation_period,
        destroy_deactivated_after=data.destroy_deactivated_after,
    )
    kek = await wrapping_kek(ctx, caller, module)
    first = new_module_key(ctx, kek, module, 1)
    async with ctx.uow() as uow:
        await require_config(uow)
        if await uow.modules.get_by_name(module.name) is not None:
            raise AlreadyExists(f"module {module.name!r} already exists")
        await uow.modules.add(module)
        await uow.keys.add(first)
        await uow.audit.append(
            [
                ctx.event(
                    caller,
                    "module.create",
                    module=module.name,
                    details={
                        "algorithm": module.algorithm.label,
                        "key_version": 1,
                        "external_wrap": module.external_wrap,
                    },
                )
            ]
        )
        await uow.commit()
    await ctx.changes.publish("module")
    return module


async def update_module(
    ctx: AppContext,
    caller: Caller,
    name: str,
    *,
    description: str | None = None,
    default_access: AccessResult | None = None,
    state: ModuleState | None = None,
    automation: dict[str, timedelta | None] | None = None,
    external_wrap: bool | None = None,
) -> CryptoModule:
    """Change a module's description, default access, state or lifecycle automation
    (``automation`` maps ``rotation_period`` / ``destroy_deactivated_after`` to a period or
    None for off; names left out keep their value), or move its DEKs between the external
    chain and the local KEK (``external_wrap``: ``module_wrap``), all in one transaction."""
    move = None
    if external_wrap is not None:
        async with ctx.uow() as uow:  # bad input first: the move may make the local KEK
            probe = await require_module(uow, name)
        probe.update(
            ctx.clock.now(),
            description=description,
            default_access=default_access,
            state=state,
            automation=automation,
        )
        move = await plan_wrap_move(ctx, caller, name, external_wrap)
    async with ctx.uow() as uow:
        module = await require_module(uow, name)
        was_external = module.external_wrap
        rewrapped: int | None = None
        if external_wrap is not None and external_wrap != module.external_wrap:
            if move is None or move.to_external is not external_wrap:
                raise Conflict(
                    "the module changed meanwhile; retry", reason=Reason.CONCURRENT_UPDATE
                )
            rewrapped = await rewrap_module_keys(ctx, uow, module, move)
        module.update(
            ctx.clock.now(),
            description=description,
            default_access=default_access,
            state=state,
            automation=automation,
        )
        await uow.modules.save(module)
        await uow.audit.append(
            [
                ctx.event(
                    caller,
                    "module.update",
                    module=name,
                    details={
                        "default_access": module.default_access.value,
                        "state": module.state.value,
                        "rotation_period_s": _seconds(module.rotation_period),
                        "destroy_deactivated_after_s": _seconds(module.destroy_deactivated_after),
                        "external_wrap": module.external_wrap,
                    },
                )
            ]
        )
        if rewrapped is not None:
            move_details: dict[str, object] = {
                "from": "external" if was_external else "local",
                "to": "external" if module.external_wrap else "local",
                "rewrapped_keys": rewrapped,
                "kek_id": str(move.target.id) if move else None,
            }
            event = ctx.event(caller, "module.external_wrap", module=name, details=move_details)
            await uow.audit.append([event])
        await uow.commit()
    await ctx.changes.publish("module")
    return module


def _seconds(period: timedelta | None) -> int | None:
    return None if period is None else int(period.total_seconds())


async def list_modules(ctx: AppContext) -> Sequence[CryptoModule]:
    """Every module."""
    async with ctx.uow() as uow:
        return await uow.modules.list()


async def get_module(ctx: AppContext, name: str) -> CryptoModule:
    """One module by name, or ``NotFound(MODULE_NOT_FOUND)``."""
    async with ctx.uow() as uow:
        return await require_module(uow, name)


async def list_module_keys(ctx: AppContext, name: str) -> Sequence[ModuleKey]:
    """A module's key versions."""
    async with ctx.uow() as uow:
        module = await require_module(uow, name)
        return await uow.keys.list_for_module(module.id)


async def rotate_module_key(
    ctx: AppContext, caller: Caller, name: str, *, action: str = "key.rotate"
) -> ModuleKey:
    """A new Active version; the previous Active one becomes Deactivated (decrypt only)."""
    kek = await _kek_of(ctx, caller, name)
    async with ctx.uow() as uow:
        module = await require_module(uow, name)
        new_key = await _rotate_in(ctx, uow, kek, module)
        await uow.audit.append(
            [ctx.event(caller, action, module=name, details={"key_version": new_key.version})]
        )
        await uow.commit()
    await ctx.changes.publish("keys")
    return new_key


async def _rotate_in(
    ctx: AppContext, uow: UnitOfWork, kek: KeyEncryptionKey, module: CryptoModule
) -> ModuleKey:
    await check_wrapping(uow, module, kek)
    keys = await uow.keys.list_for_module(module.id)
    now = ctx.clock.now()
    for key in keys:
        if key.state is KeyState.ACTIVE:
            key.deactivate(now)
            await uow.keys.save(key)
    version = max((k.version for k in keys), default=0) + 1
    new_key = new_module_key(ctx, kek, module, version)
    await uow.keys.add(new_key)
    return new_key


async def change_key_state(
    ctx: AppContext,
    caller: Caller,
    name: str,
    version: int,
    action: KeyAction,
    reason: str | None = None,
) -> ModuleKey:
    """Revoke, suspend, resume or destroy one key version, with the caller's ``reason``
    (required to revoke, optional otherwise), kept on the version and audited.

    Revoking the Active version generates a new Active one in the same transaction, so the
    module keeps encrypting under a key that is not revoked. Destroying overwrites the wrapped
    DEK (NULL), and once that is committed erases the row versions that still held it.
    """
    kek: KeyEncryptionKey | None = None
    if action is KeyAction.REVOKE:
        kek = await _kek_of(ctx, caller, name)
    async with ctx.uow() as uow:
        module = await require_module(uow, name)
        keys = {k.version: k for k in await uow.keys.list_for_module(module.id)}
        key = keys.get(version)
        if key is None:
            raise NotFound(
                f"module {name!r} has no key version {version}", reason=Reason.KEY_VERSION_NOT_FOUND
            )
        now = ctx.clock.now()
        was_active = key.state is KeyState.ACTIVE
        details: dict[str, object] = {"key_version": version, "from": key.state.value}
        if action is KeyAction.REVOKE:
            key.revoke(now, reason)
        elif action is KeyAction.SUSPEND:
            key.suspend(now, reason)
        elif action is KeyAction.RESUME:
            other_active = any(k.state is KeyState.ACTIVE for v, k in keys.items() if v != version)
            key.resume(now, other_active=other_active, reason=reason)
        else:
            key.destroy(now, reason)
        await uow.keys.save(key)
        if kek is not None and was_active:  # revoked the Active version: replace it
            replacement = await _rotate_in(ctx, uow, kek, module)
            details["new_active_version"] = replacement.version
        details["to"] = key.state.value
        details["reason"] = key.state_reason
        await uow.audit.append(
            [ctx.event(caller, f"key.{action.value}", module=name, details=details)]
        )
        await uow.commit()
    await ctx.changes.publish("keys")
    if action is KeyAction.DESTROY:
        await erase_dead_rows(ctx, KeyStore.MODULE_KEYS)
    return key
