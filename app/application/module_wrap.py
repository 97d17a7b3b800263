"""Which KEK wraps a module's DEKs: the external chain's (``external_wrap=true``, the default)
or the instance's local KEK (``false``, ``app/domain/local_kek``), and moving a module between
the two.

Moving is a rewrap of every DEK that has material, from one KEK to the other, with the flag
switched in the same transaction (``rewrap_module_keys``): a crash (kill -9) before the commit
leaves the module wholly under the old KEK, after it wholly under the new one, and asking again
skips what is already under the target. The DEKs themselves do not change, so no ciphertext is
touched and decrypts carry on from the cached data keys while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.application.context import AppContext
from app.application.local_kek import mint_local_kek
from app.application.lookups import require_module
from app.application.ports import UnitOfWork
from app.application.snapshot import Snapshot
from app.domain.errors import Conflict, EkmsError, KeyUnavailable, Reason
from app.domain.keys import KeyEncryptionKey
from app.domain.module import CryptoModule
from app.domain.values import Caller


def _moved_meanwhile() -> Conflict:
    return Conflict(
        "the module's wrapping or the KEK changed meanwhile; retry",
        reason=Reason.CONCURRENT_UPDATE,
    )


async def ensure_local_kek(ctx: AppContext, caller: Caller) -> KeyEncryptionKey:
    """The local KEK, created (and audited) on first need; ``InvalidInput`` without a local
    root key in this process, ``KeyUnavailable(LOCAL_KEK_UNAVAILABLE)`` if it will not unwrap."""
    snap = await ctx.chain.snapshot()
    if snap.local_kek is not None:
        return snap.local_kek
    async with ctx.uow() as uow:
        existing = await uow.local_keks.get()
    if existing is None:
        row, kek = await mint_local_kek(
            ctx.kms, ctx.rng, ctx.chain.instance_id, ctx.clock.now(), ctx.local_kek_ref
        )
        try:
            async with ctx.uow() as uow:
                await uow.local_keks.add(row)
                details: dict[str, object] = {"kek_id": str(row.id), "fingerprint": row.fingerprint}
                await uow.audit.append([ctx.event(caller, "local_kek.create", details=details)])
                await uow.commit()
            ctx.chain.remember_kek(kek, local=True)
        except Conflict:
            pass  # another replica made it first: use that one
    await ctx.changes.publish("kek")
    return ctx.chain.local_kek(await ctx.chain.snapshot())


async def wrapping_kek(ctx: AppContext, caller: Caller, module: CryptoModule) -> KeyEncryptionKey:
    """The KEK new DEKs of ``module`` are wrapped under, if it can serve now."""
    if not module.external_wrap:
        return await ensure_local_kek(ctx, caller)
    return ctx.chain.check_serving(await ctx.chain.snapshot(), None)


async def check_wrapping(uow: UnitOfWork, module: CryptoModule, kek: KeyEncryptionKey) -> None:
    """Inside the transaction that adds a DEK under ``kek``: ``module`` (as stored now) is still
    wrapped that way. Saving the module makes a concurrent move conflict with this one."""
    if module.external_wrap:
        active = await uow.instance_keys.get_active()
        if active is None or active.id != kek.id:
            raise _moved_meanwhile()
    else:
        local = await uow.local_keks.get(share=True)  # a local KEK rotation waits for us
        if local is None or local.id != kek.id:
            raise _moved_meanwhile()
    await uow.modules.save(module)


@dataclass(frozen=True, slots=True)
class WrapMove:
    """A planned move of a module's DEKs: from ``source`` to ``target`` (both unwrapped)."""

    to_external: bool
    source: KeyEncryptionKey
    target: KeyEncryptionKey


async def plan_wrap_move(
    ctx: AppContext, caller: Caller, name: str, external_wrap: bool
) -> WrapMove | None:
    """The KEKs a move of module ``name`` to ``external_wrap`` needs; None if it is there.

    Both KEKs must serve: the DEKs are unwrapped under one and wrapped under the other. While
    the external chain cannot serve, a module moves neither in nor out (``KeyUnavailable``,
    409): out would let a module escape a revocation the customer made."""
    async with ctx.uow() as uow:
        module = await require_module(uow, name)
    if module.external_wrap == external_wrap:
        return None
    snap = await ctx.chain.snapshot()
    try:
        external = ctx.chain.check_serving(snap, None)
    except EkmsError as exc:
        raise KeyUnavailable(
            f"external_wrap cannot change while the external key chain cannot serve "
            f"({exc.reason.value}): the DEKs move between it and the local KEK",
            reason=exc.reason,
        ) from None
    local = await ensure_local_kek(ctx, caller)
    if external_wrap:
        return WrapMove(True, source=local, target=external)
    return WrapMove(False, source=external, target=local)


async def rewrap_module_keys(
    ctx: AppContext, uow: UnitOfWork, module: CryptoModule, move: WrapMove
) -> int:
    """Inside the caller's transaction: every DEK of ``module`` with material rewrapped from
    ``move.source`` to ``move.target`` and the flag switched; how many were rewrapped. The
    caller saves the module (its revision guards against a concurrent rotation or move)."""
    if move.to_external:
        active = await uow.instance_keys.get_active()
        if active is None or active.id != move.target.id:
            raise _moved_meanwhile()
    local = await uow.local_keks.get(share=True)  # a local KEK rotation waits for us
    if local is None or local.id != (move.source if move.to_external else move.target).id:
        raise _moved_meanwhile()
    count = 0
    for key in await uow.keys.list_for_module(module.id):
        if key.wrapped_dek is None:
            continue
        if key.kek_id == move.target.id and key.local_wrap is not move.to_external:
            continue  # already there: a retried move
        if key.kek_id != move.source.id:
            raise _moved_meanwhile()
        dek = move.source.unwrap(key.wrapped_dek, key.module_id, key.version)
        nonce = ctx.rng.token_bytes(12)
        key.wrapped_dek = move.target.wrap(dek, key.module_id, key.version, nonce)
        del dek
        key.kek_id, key.local_wrap = move.target.id, not move.to_external
        await uow.keys.save(key)
        count += 1
    module.external_wrap = move.to_external
    return count


@dataclass(frozen=True, slots=True)
class ModuleWrapping:
    """For the status: a module, whether it depends on the external key, whether it serves."""

    name: str
    external_wrap: bool
    serving_reason: str | None  # None: its KEK serves


def module_wrappings(ctx: AppContext, snap: Snapshot) -> tuple[ModuleWrapping, ...]:
    """Every module of the snapshot with what gates it, by name."""
    found = []
    for name in sorted(snap.modules):
        module = snap.modules[name].module
        try:
            ctx.chain.check_serving(snap, module)
            reason = None
        except EkmsError as exc:
            reason = exc.reason.value
        found.append(ModuleWrapping(name, module.external_wrap, reason))
    return tuple(found)
