"""The audit chain's signed checkpoints and their signing keys in SQL.

``lock_head`` takes the same ``SELECT ... FOR UPDATE`` of ``audit_chain_head`` as an append
(``app/infra/db/audit.py``), so replicas make checkpoints one at a time; the primary key on
``seq`` refuses a second checkpoint of one head all the same (``add`` answers ``False``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.application.ports import ChainHead
from app.domain.audit_chain import GENESIS
from app.domain.audit_checkpoint import Checkpoint, SigningKeyRecord
from app.infra.db import tables as t
from app.infra.db._base import SqlRepository
from app.infra.db.errors import translate_unavailable

_cp = t.audit_checkpoints
_keys = t.audit_signing_keys
_head = t.audit_chain_head
_events = t.audit_events


class SqlaAuditCheckpointRepository(SqlRepository):
    async def lock_head(self) -> ChainHead:
        head = await self._one(select(_head.c.seq, _head.c.hash).with_for_update())
        if head is None or head["seq"] == 0:
            return ChainHead(0, GENESIS, None)
        event_id = await self._one(select(_events.c.id).where(_events.c.seq == head["seq"]))
        return ChainHead(head["seq"], head["hash"], event_id["id"] if event_id else None)

    async def last(self) -> Checkpoint | None:
        row = await self._one(select(_cp).order_by(_cp.c.seq.desc()).limit(1))
        return _checkpoint(row) if row is not None else None

    async def add(self, checkpoint: Checkpoint) -> bool:
        values = {
            "seq": checkpoint.seq,
            "event_id": checkpoint.event_id,
            "hash": checkpoint.hash,
            "at": checkpoint.at,
            "count": checkpoint.count,
            "key_id": checkpoint.key_id,
            "signature": checkpoint.signature,
        }
        try:
            async with translate_unavailable():
                async with self._conn.begin_nested():
                    await self._execute(insert(_cp).values(**values))
        except IntegrityError:  # _execute lets only unique violations through
            return False
        return True

    async def page(self, after_seq: int, limit: int) -> Sequence[Checkpoint]:
        stmt = select(_cp).where(_cp.c.seq > after_seq).order_by(_cp.c.seq).limit(limit)
        return [_checkpoint(row) for row in await self._rows(stmt)]

    async def signing_keys(self) -> Sequence[SigningKeyRecord]:
        rows = await self._rows(select(_keys).order_by(_keys.c.created_at, _keys.c.id))
        return [
            SigningKeyRecord(
                r["id"],
                r["kek_id"],
                bytes(r["wrapped_seed"]),
                bytes(r["public_key"]),
                r["created_at"],
            )
            for r in rows
        ]

    async def add_signing_key(self, key: SigningKeyRecord) -> None:
        await self._execute(
            insert(_keys).values(
                id=key.id,
                kek_id=key.kek_id,
                wrapped_seed=key.wrapped_seed,
                public_key=key.public_key,
                created_at=key.created_at,
            )
        )

    async def rewrap_signing_key(
        self, key_id: uuid.UUID, kek_id: uuid.UUID, wrapped_seed: bytes
    ) -> None:
        await self._execute(
            update(_keys)
            .where(_keys.c.id == key_id)
            .values(kek_id=kek_id, wrapped_seed=wrapped_seed)
        )


def _checkpoint(row: RowMapping) -> Checkpoint:
    return Checkpoint(
        seq=row["seq"],
        event_id=row["event_id"],
        hash=bytes(row["hash"]),
        at=row["at"],
        count=row["count"],
        key_id=row["key_id"],
        signature=bytes(row["signature"]),
    )
