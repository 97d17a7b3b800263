"""Ending the configuration once every external key is deleted (the way out of the dead end):
its key versions are lost, its EKEKs and external keys removed, all in one transaction; a new
``PUT /ekms/config`` then starts a fresh chain with a new KEK."""

from __future__ import annotations

from dataclasses import dataclass

from app.application.context import AppContext
from app.application.lookups import load_keys, require_config
from app.domain.alerts import key_unusable_kind
from app.domain.errors import Conflict, InvalidInput, Reason
from app.domain.values import Caller, ExternalKeyStatus


@dataclass(frozen=True, slots=True)
class ConfigEnded:
    """What ending the configuration removed."""

    lost_versions: int
    external_keys: int
    ekeks: int


async def end_ekms_config(ctx: AppContext, caller: Caller, confirm: str) -> ConfigEnded:
    """End the configuration when every external key is deleted; ``confirm`` must name this
    instance. Key versions under the old KEK are marked lost (those under the local KEK, of
    modules with ``external_wrap=false``, keep serving); nothing changes on a refusal."""
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        config = await require_config(uow)
        if confirm != config.instance_id:
            raise InvalidInput(
                "confirm must be this instance's id (instance_id in GET /api/v1/ekms/config)",
                field="confirm",
            )
        keys = await load_keys(uow, config)
        alive = [k for k in keys if k.external_key_status is not ExternalKeyStatus.DELETED]
        if alive:
            states = ", ".join(f"{k.key_id} is {k.external_key_status.value}" for k in alive)
            raise Conflict(
                "the configuration ends only when every external key is deleted "
                f"(as last synced): {states}",
                reason=Reason.EXTERNAL_KEY_NOT_DELETED,
            )
        lost = 0
        for key in await uow.keys.list_all():
            if key.wrapped_dek is not None and not key.local_wrap:  # local ones stay
                key.lose(now)
                await uow.keys.save(key)
                lost += 1
        ekeks = await uow.instance_keys.list()
        for row in ekeks:
            await uow.instance_keys.delete(row.id)
        stored = await uow.external_keys.list()
        for external in stored:
            await uow.external_keys.delete(external.id)
        for index, external in enumerate(keys):
            await uow.status.close_alerts(
                key_unusable_kind(None if index == 0 else external.id), now
            )
        await uow.config.delete(config)
        ended = ConfigEnded(lost, len(stored) or len(keys), len(ekeks))
        await uow.audit.append(
            [
                ctx.event(
                    caller,
                    "ekms.config.end",
                    target=config.key_id,
                    details={
                        "lost_key_versions": ended.lost_versions,
                        "external_keys": [k.key_id for k in keys],
                        "ekeks": ended.ekeks,
                    },
                )
            ]
        )
        await uow.commit()
    await ctx.changes.publish("purge")
    return ended
