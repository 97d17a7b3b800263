"""What the store and key admin use cases share: the KEK they seal under, a store by id."""

from __future__ import annotations

import uuid

from app.application.context import AppContext
from app.application.ports import UnitOfWork
from app.domain.errors import NotFound
from app.domain.keys import KeyEncryptionKey
from app.domain.xks import XksStore


async def serving_kek(ctx: AppContext) -> KeyEncryptionKey:
    return ctx.chain.check_serving(await ctx.chain.snapshot(), None)


async def load_store(uow: UnitOfWork, store_id: uuid.UUID) -> XksStore:
    store = await uow.xks_stores.get(store_id)
    if store is None:
        raise NotFound(f"XKS store {store_id} does not exist")
    return store
