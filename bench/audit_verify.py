"""How long ``verify`` takes over a large audit chain and its signed checkpoints, on Postgres.

    uv run python -m bench.audit_verify [ROWS] [CHECKPOINT_EVERY]      # default 200000 10000
    uv run python -m bench.audit_verify 1000000 10000                  # the 1 M figure

A fresh database on the local Postgres (``EKMS_TEST_PG_ADMIN_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``), migrated to head, dropped afterwards. The rows
are generated in SQL, in one ``INSERT ... SELECT`` over a recursive CTE that computes each row's
canonical encoding and ``sha256(prev_hash || canonical)`` itself (docs/audit.md), so the chain
is exactly what ekms would have written (the walk checks that: a single wrong byte is a break).
Then one signing key, sealed under a bench KEK, signs a checkpoint every CHECKPOINT_EVERY rows.
``verify_audit_chain`` then walks everything twice: the chain alone (checkpoints not yet
inserted) and chain plus checkpoints. Prints rows/s and the time for 1 M rows at that rate.
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
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from app.application.audit_verify import ChainReport, verify_audit_chain
from app.domain.audit_checkpoint import AuditSigner, Checkpoint, seal_purpose
from app.domain.keys import KeyEncryptionKey
from app.infra.db import tables as t
from app.infra.db.engine import create_engine
from app.infra.db.migrate import upgrade_to_head
from app.infra.db.uow import SqlaUnitOfWorkFactory

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# One row's canonical JSON (app/domain/audit_chain.py) from its position @S@ alone: the id is
# md5(position) as a UUID, the time T0 + position milliseconds.
_CANONICAL = (
    """'{"action":"encrypt","actor":"bench","at":"' || """
    """to_char(($2::timestamptz + (@S@) * interval '1 millisecond') AT TIME ZONE 'UTC', """
    """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || """
    """'","count":1,"details":{},"id":"' || md5((@S@)::text)::uuid::text || """
    """'","module":"bench.m","reason":null,"result":"success","target":null}'"""
)


def _canonical(position: str) -> str:
    return _CANONICAL.replace("@S@", position)


# asyncpg parameters: $1 the genesis hash, $2 T0, $3 the number of rows. The recursive CTE
# carries (position, prev_hash, hash): one row an iteration, nothing joined.
GENERATE = (
    "INSERT INTO audit_events "  # noqa: S608 - constant text, no input
    "(id, at, actor, action, result, module, details, count, seq, prev_hash, hash) "
    "WITH RECURSIVE c(s, prev, h) AS ("
    "  SELECT 1::bigint, $1::bytea, "
    f"   sha256($1::bytea || convert_to({_canonical('1')}, 'UTF8')) "
    "  UNION ALL "
    f"  SELECT s + 1, h, sha256(h || convert_to({_canonical('s + 1')}, 'UTF8')) "
    "  FROM c WHERE s < $3"
    ") "
    "SELECT md5(s::text)::uuid, $2::timestamptz + s * interval '1 millisecond', "
    "'bench', 'encrypt', 'success', 'bench.m', '{}', 1, s, prev, h FROM c"
)
HEAD = "UPDATE audit_chain_head SET seq = $1, hash = (SELECT hash FROM audit_events WHERE seq = $1)"


class _Chain:  # what verify asks of the key chain: the KEK the signing key is sealed under
    def __init__(self, kek: KeyEncryptionKey) -> None:
        self._kek = kek

    async def snapshot(self) -> None:
        return None

    def check_serving(self, _snap: object, _module: object) -> KeyEncryptionKey:
        return self._kek


class _Ctx:  # verify_audit_chain reads only ``ctx.uow`` and ``ctx.chain``
    def __init__(self, uow: SqlaUnitOfWorkFactory, kek: KeyEncryptionKey) -> None:
        self.uow = uow
        self.chain = _Chain(kek)


async def _generate(dsn: str, rows: int) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(GENERATE, bytes(32), T0, rows)
            await conn.execute(HEAD, rows)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def _checkpoints(engine: Any, kek: KeyEncryptionKey, every: int) -> int:
    seed = os.urandom(32)
    signer = AuditSigner(uuid.uuid4(), seed)
    sealed = kek.seal(seed, seal_purpose(signer.key_id, signer.public_key), os.urandom(12))
    async with engine.begin() as conn:
        await conn.execute(
            insert(t.audit_signing_keys).values(
                id=signer.key_id,
                kek_id=kek.id,
                wrapped_seed=sealed,
                public_key=signer.public_key,
                created_at=T0,
            )
        )
        heads = (
            await conn.execute(
                text("SELECT seq, id, hash FROM audit_events WHERE seq % :k = 0 ORDER BY seq"),
                {"k": every},
            )
        ).all()
        previous, values = 0, []
        for seq, event_id, digest in heads:
            c = signer.sign(Checkpoint(seq, event_id, digest, T0, seq - previous, signer.key_id))
            previous = seq
            values.append(
                {
                    "seq": c.seq,
                    "event_id": c.event_id,
                    "hash": c.hash,
                    "at": c.at,
                    "count": c.count,
                    "key_id": c.key_id,
                    "signature": c.signature,
                }
            )
        if values:
            await conn.execute(insert(t.audit_checkpoints), values)
    return len(values)


async def _timed(ctx: Any) -> tuple[ChainReport, float, float]:
    """The report, the wall time, and this process's CPU time (the walk's hashing and
    mapping; the rest of the wall time is Postgres and waiting for a core)."""
    started, cpu = time.perf_counter(), time.process_time()
    report = await verify_audit_chain(ctx)
    return report, time.perf_counter() - started, time.process_time() - cpu


async def run(rows: int, every: int, admin_url: str | None = None) -> dict[str, Any]:
    """Generate, checkpoint and verify; the figures (and both reports' outcome)."""
    admin = make_url(
        admin_url
        or os.environ.get("EKMS_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    name = f"ekms_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(
        admin.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(drivername="postgresql+asyncpg", database=name)
    url_text = url.render_as_string(hide_password=False)
    try:
        await upgrade_to_head(url_text)
        engine = create_engine(url_text)
        kek = KeyEncryptionKey(uuid.uuid4(), os.urandom(32))
        ctx = _Ctx(SqlaUnitOfWorkFactory(engine), kek)
        generated = await _generate(
            url.set(drivername="postgresql").render_as_string(hide_password=False), rows
        )
        plain, plain_s, _ = await _timed(ctx)
        signed = await _checkpoints(engine, kek, every)
        full, full_s, full_cpu = await _timed(ctx)
        await engine.dispose()
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    return {
        "rows": rows,
        "generate_s": generated,
        "chain_ok": plain.ok and plain.checked == rows,
        "chain_s": plain_s,
        "checkpoints": signed,
        "full_ok": full.ok and full.checked == rows and full.checkpoints == signed,
        "full_s": full_s,
        "full_cpu_s": full_cpu,
        "load": os.getloadavg()[0],
        "rows_per_s": rows / full_s,
        "first_break": full.first_break,
    }


def _print(r: dict[str, Any]) -> None:
    rate = r["rows_per_s"]
    print(f"{r['rows']:,} chained rows generated in SQL in {r['generate_s']:.1f} s")
    print(f"  verify, chain only:        {r['chain_s']:.2f} s  ok={r['chain_ok']}")
    print(
        f"  verify, + {r['checkpoints']} checkpoints: {r['full_s']:.2f} s  ok={r['full_ok']}"
        f"  ({rate:,.0f} rows/s; 1 M rows ~ {1e6 / rate:.0f} s)"
    )
    print(f"  of which ekms's CPU: {r['full_cpu_s']:.2f} s; host load average {r['load']:.1f}")
    print(f"  ratio with/without checkpoints: {r['full_s'] / r['chain_s']:.2f}")
    if r["first_break"] is not None:
        print(f"  first break: {r['first_break']}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    rows, every = (args + [200_000, 10_000][len(args) :])[:2]
    _print(asyncio.run(run(rows, every)))
