"""What the audit hash chain costs a flush, and how long verify takes, on Postgres.

    uv run python -m bench.audit_chain [FLUSHES] [ROWS_PER_FLUSH]

A fresh database on the local Postgres (``EKMS_TEST_PG_ADMIN_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``), migrated to head, dropped afterwards. Each flush
is one transaction of ROWS_PER_FLUSH aggregated rows, as ``AuditBuffer.flush`` writes them:
plain first (the insert alone, as before the chain: no lock, no hash, rows left unchained
before the chain starts), then chained (head row locked FOR UPDATE, hashes computed, head
moved). Then ``verify`` walks every chained row. One run,
one writer: the lock's cost under contention is the waiting, which this does not show.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from app.application.audit_verify import verify_audit_chain
from app.domain.audit import AuditEvent, AuditResult
from app.infra.db import mappers as m
from app.infra.db import tables as t
from app.infra.db.engine import create_engine
from app.infra.db.migrate import upgrade_to_head
from app.infra.db.uow import SqlaUnitOfWorkFactory


def _events(n: int) -> list[AuditEvent]:
    now = datetime.now(UTC)
    return [
        AuditEvent(
            uuid.uuid4(), now, f"svc-{i}", "encrypt", AuditResult.SUCCESS, "bench.m", count=3
        )
        for i in range(n)
    ]


class _Ctx:  # verify_audit_chain reads only ``ctx.uow``
    def __init__(self, uow: SqlaUnitOfWorkFactory) -> None:
        self.uow = uow


async def _run(flushes: int, per_flush: int) -> None:
    admin = make_url(
        os.environ.get("EKMS_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    name = f"ekms_bench_{uuid.uuid4().hex[:12]}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(drivername="postgresql+asyncpg", database=name)
    url_text = url.render_as_string(hide_password=False)
    try:
        await upgrade_to_head(url_text)
        engine = create_engine(url_text)
        uow = SqlaUnitOfWorkFactory(engine)
        async with engine.begin() as c:  # warm the pool and the statement cache, untimed
            await c.execute(insert(t.audit_events), [m.audit_values(e) for e in _events(per_flush)])
        started = time.perf_counter()
        for _ in range(flushes):
            async with engine.begin() as c:
                await c.execute(
                    insert(t.audit_events), [m.audit_values(e) for e in _events(per_flush)]
                )
        plain = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(flushes):
            async with uow() as work:
                await work.audit.append(_events(per_flush))
                await work.commit()
        chained = time.perf_counter() - started
        started = time.perf_counter()
        ctx: Any = _Ctx(uow)
        report = await verify_audit_chain(ctx)
        walked = time.perf_counter() - started
        await engine.dispose()
        rows = flushes * per_flush
        print(f"{flushes} flushes of {per_flush} rows on Postgres")
        print(f"  chained: {chained * 1000 / flushes:.2f} ms a flush")
        print(f"  plain:   {plain * 1000 / flushes:.2f} ms a flush")
        print(f"  ratio chained/plain: {chained / plain:.2f}")
        print(
            f"  verify: {report.checked} of {rows} chained rows in {walked:.2f} s "
            f"({rows / walked:,.0f} rows/s; 1 M rows ~ {1e6 / (rows / walked):.0f} s); "
            f"first break: {report.first_break}"
        )
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(_run(*(args + [200, 100][len(args) :])))
