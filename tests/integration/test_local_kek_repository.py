"""The local KEK's row and the versions wrapped under it, on real Postgres and SQLite."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from app.application.keychain_read import read_chain
from app.domain.errors import Conflict, Reason
from app.domain.local_kek import LocalInstanceKey, local_kek_context
from app.domain.values import KeyState
from app.infra.db.engine import create_engine
from app.infra.db.uow import SqlaUnitOfWorkFactory
from tests.integration.test_repositories import NOW, make_ekek, make_key, make_module


def _local_kek() -> LocalInstanceKey:
    kek_id = uuid.uuid4()
    return LocalInstanceKey(
        id=kek_id,
        wrapped_kek=b"ekms-local\x01" + uuid.uuid4().bytes,
        key_name="local:0123456789abcdef",
        encryption_context=local_kek_context("instance-1", kek_id),
        fingerprint="fp-" + uuid.uuid4().hex,
        created_at=NOW,
    )


async def test_the_local_kek_round_trips_and_a_second_one_is_refused(
    uow_factory: SqlaUnitOfWorkFactory,
) -> None:
    first = _local_kek()
    async with uow_factory() as uow:
        assert await uow.local_keks.get() is None
        await uow.local_keks.add(first)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.local_keks.get() == first
        with pytest.raises(Conflict) as err:
            await uow.local_keks.add(_local_kek())  # another replica's, made at the same time
        assert err.value.reason is Reason.CONCURRENT_UPDATE
        assert await uow.local_keks.get() == first  # the transaction is still usable
    assert "wrapped_kek" not in repr(first)


async def test_a_version_names_the_kek_it_is_wrapped_under_local_or_external(
    uow_factory: SqlaUnitOfWorkFactory,
) -> None:
    module, local, ekek = make_module(), _local_kek(), make_ekek(active=True)
    under_local = make_key(module.id, 1, kek_id=local.id, local_wrap=True)
    under_external = make_key(module.id, 2, kek_id=ekek.id, state=KeyState.DEACTIVATED)
    async with uow_factory() as uow:
        await uow.instance_keys.add(ekek)
        await uow.local_keks.add(local)
        await uow.modules.add(module)
        await uow.keys.add(under_local)
        await uow.keys.add(under_external)
        await uow.commit()
    async with uow_factory() as uow:
        stored = {k.version: k for k in await uow.keys.list_for_module(module.id)}
        assert stored[1].local_wrap and stored[1].kek_id == local.id
        assert not stored[2].local_wrap and stored[2].kek_id == ekek.id
        stored[1].kek_id, stored[1].local_wrap = ekek.id, False  # moved under the external KEK
        await uow.keys.save(stored[1])
        await uow.commit()
    async with uow_factory() as uow:
        moved = await uow.keys.get(module.id, 1)
        assert moved is not None and not moved.local_wrap and moved.kek_id == ekek.id


async def test_a_replace_overwrites_the_row_it_names_and_no_other(
    uow_factory: SqlaUnitOfWorkFactory,
) -> None:
    first, second, third = _local_kek(), _local_kek(), _local_kek()
    async with uow_factory() as uow:
        await uow.local_keks.add(first)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.local_keks.get(share=True) == first
        await uow.local_keks.replace(first.id, second)  # a rotation
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.local_keks.get() == second
        with pytest.raises(Conflict) as err:
            await uow.local_keks.replace(first.id, third)  # a rotation that read the old one
        assert err.value.reason is Reason.CONCURRENT_UPDATE
    async with uow_factory() as uow:
        assert await uow.local_keks.get() == second


class _KeysRotatedUnderfoot:
    """``uow.keys`` whose first ``list_all`` lets a local KEK rotation commit (on its own
    connection) just before it reads: the torn read READ COMMITTED allows."""

    def __init__(self, inner: Any, rotate: Callable[[], Awaitable[None]]) -> None:
        self._inner, self._rotate, self.calls = inner, rotate, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_all(self) -> Any:
        self.calls += 1
        if self.calls == 1:
            await self._rotate()
        return await self._inner.list_all()


async def test_a_snapshot_read_never_pairs_an_old_local_kek_with_rotated_versions(
    pg_url: str,
) -> None:
    engine = create_engine(pg_url)
    factory = SqlaUnitOfWorkFactory(engine)
    module, old, new = make_module(), _local_kek(), _local_kek()
    try:
        async with factory() as uow:
            await uow.local_keks.add(old)
            await uow.modules.add(module)
            await uow.keys.add(make_key(module.id, 1, kek_id=old.id, local_wrap=True))
            await uow.commit()

        async def rotate() -> None:
            async with factory() as uow:
                await uow.local_keks.replace(old.id, new)
                key = await uow.keys.get(module.id, 1)
                assert key is not None
                key.kek_id = new.id
                await uow.keys.save(key)
                await uow.commit()

        hooks: list[_KeysRotatedUnderfoot] = []

        @contextlib.asynccontextmanager
        async def torn() -> AsyncIterator[Any]:
            async with factory() as uow:
                hooks.append(_KeysRotatedUnderfoot(uow.keys, rotate))
                uow.keys = hooks[-1]  # type: ignore[assignment]
                yield uow

        rows = await read_chain(torn)  # type: ignore[arg-type]
        assert hooks[0].calls == 2  # the first read was torn, and read again
        assert rows.local_row is not None and rows.local_row.id == new.id
        assert [k.kek_id for k in rows.keys_versions] == [new.id]
    finally:
        await engine.dispose()
