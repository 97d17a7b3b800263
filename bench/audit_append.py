"""What one audit chain costs across replicas: rows/s appended by 1 and by 2 writer processes
on the same Postgres, in one run.

    uv run python -m bench.audit_append [FLUSHES] [ROWS_PER_FLUSH]

A fresh database on the local Postgres (``EKMS_TEST_PG_ADMIN_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``), migrated to head, dropped afterwards. Each writer
is a process of its own (an engine of its own, as a replica has) that appends FLUSHES
transactions of ROWS_PER_FLUSH aggregated rows through ``SqlaAuditRepository.append``, as
``AuditBuffer.flush`` does: the chain head locked ``FOR UPDATE``, hashes computed, rows
inserted, head moved, commit. First one writer alone, then two together (both warmed up, then
released at once); the rate is all rows over the wall time from the release to the last
commit. Then ``verify`` walks the chain (it must be intact: one chain, no fork).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from app.application.audit_verify import verify_audit_chain
from app.domain.audit import AuditEvent, AuditResult
from app.infra.db.engine import create_engine
from app.infra.db.migrate import upgrade_to_head
from app.infra.db.uow import SqlaUnitOfWorkFactory


def _events(n: int, writer: int) -> list[AuditEvent]:
    now = datetime.now(UTC)
    return [
        AuditEvent(
            uuid.uuid4(), now, f"svc-{writer}-{i}", "encrypt", AuditResult.SUCCESS, "b.m", count=3
        )
        for i in range(n)
    ]


async def _append(url: str, writer: int, flushes: int, rows: int, go: Event) -> tuple[float, float]:
    engine = create_engine(url)
    uow = SqlaUnitOfWorkFactory(engine)
    try:
        async with uow() as work:  # warm the pool and the statement cache, untimed
            await work.audit.append(_events(rows, writer))
            await work.commit()
        await asyncio.to_thread(go.wait)
        started = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on Linux
        for _ in range(flushes):
            async with uow() as work:
                await work.audit.append(_events(rows, writer))
                await work.commit()
        return started, time.monotonic()
    finally:
        await engine.dispose()


def _writer(url: str, writer: int, flushes: int, rows: int, go: Event, out: Any) -> None:
    out.put(asyncio.run(_append(url, writer, flushes, rows, go)))


def _phase(url: str, writers: int, flushes: int, rows: int) -> float:
    """Rows/s of ``writers`` processes appending at once."""
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(url, w, flushes, rows, go, out)) for w in range(writers)
    ]
    for p in procs:
        p.start()
    time.sleep(2.0)  # every writer warmed up and waiting (a start-up cost, not measured)
    go.set()
    spans = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a writer exited {p.exitcode}")
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return writers * flushes * rows / wall


class _Ctx:  # verify_audit_chain reads only ``ctx.uow``
    def __init__(self, uow: SqlaUnitOfWorkFactory) -> None:
        self.uow = uow


async def _verify(url: str) -> Any:
    engine = create_engine(url)
    try:
        ctx: Any = _Ctx(SqlaUnitOfWorkFactory(engine))
        return await verify_audit_chain(ctx)
    finally:
        await engine.dispose()


def run(flushes: int, rows: int, admin_url: str | None = None) -> dict[str, Any]:
    """The figures of one run: rows/s with 1 and 2 writers, their ratio, and the verify."""
    admin = make_url(
        admin_url
        or os.environ.get("EKMS_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    name = f"ekms_bench_{uuid.uuid4().hex[:12]}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    url = admin.set(drivername="postgresql+asyncpg", database=name)
    url_text = url.render_as_string(hide_password=False)
    asyncio.run(_admin(dsn, f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(upgrade_to_head(url_text))
        one = _phase(url_text, 1, flushes, rows)
        two = _phase(url_text, 2, flushes, rows)
        report = asyncio.run(_verify(url_text))
    finally:
        asyncio.run(_admin(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return {"one": one, "two": two, "checked": report.checked, "ok": report.ok, "report": report}


def main(flushes: int, rows: int) -> None:
    f = run(flushes, rows)
    print(f"audit append on Postgres, {flushes} flushes of {rows} rows per writer")
    print(f"  1 writer:  {f['one']:,.0f} rows/s")
    print(f"  2 writers: {f['two']:,.0f} rows/s (both together)")
    print(f"  ratio 2 writers / 1 writer: {f['two'] / f['one']:.2f}")
    print(f"  verify: {f['checked']} rows, ok={f['ok']}, first break: {f['report'].first_break}")


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*(args + [200, 100][len(args) :]))
