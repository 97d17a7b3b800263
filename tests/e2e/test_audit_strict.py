"""Strict audit mode end to end (Postgres, moto's KMS server, the real gRPC server and REST
app): every data-plane answer, unary, batch and stream item, over gRPC and REST, comes after
its audit event is committed; when the audit store refuses writes (a trigger a superuser adds
to ``audit_events``), calls fail closed: gRPC UNAVAILABLE, REST 503 problem+json, reason
AUDIT_UNAVAILABLE; once it accepts them again, calls succeed and the chain verifies."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import grpc
import httpx
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc
from sqlalchemy.engine import make_url

from app.application.audit_verify import verify_audit_chain
from app.bootstrap import build_grpc_server, build_rest_app, grpc_options, running
from tests.e2e.conftest import (
    BILLING,
    Ekms,
    build_world,
    e2e_settings,
    error_info,
    item_reason,
    mint,
    module_target,
)
from tests.e2e.rest_support import asgi_client

SUB = "strict-svc"
AUDITED = "SELECT coalesce(sum(count), 0) FROM audit_events WHERE actor = $1"
REFUSE = """
CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'audit store refuses writes'; END $$;
CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events
FOR EACH ROW EXECUTE FUNCTION refuse_audit();
"""
ACCEPT = "DROP TRIGGER refuse_audit ON audit_events; DROP FUNCTION refuse_audit();"


@dataclasses.dataclass
class Strict:
    ekms: Ekms
    api: httpx.AsyncClient
    db: asyncpg.Connection

    async def audited(self) -> int:
        return int(await self.db.fetchval(AUDITED, SUB))


@pytest.fixture
async def strict(
    pg_url: str, moto_server: str, aws_env: str, kms_key: str, tmp_path: Path
) -> AsyncIterator[Strict]:
    # A flush tick of a minute: only a waiting call can have made its event durable.
    settings = e2e_settings(
        pg_url, moto_server, aws_env, tmp_path, audit_mode="strict", audit_flush_seconds=60
    )
    dsn = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    db = await asyncpg.connect(dsn)
    async with running(settings) as container:
        await build_world(container, kms_key)
        server = build_grpc_server(container, grpc_options(settings))
        port = await server.start()
        address = f"127.0.0.1:{port}"
        try:
            async with (
                grpc.aio.insecure_channel(address) as channel,
                asgi_client(build_rest_app(container)) as api,
            ):
                ekms = Ekms(container, server, address, channel, pb_grpc.CryptoStub(channel))
                yield Strict(ekms, api, db)
        finally:
            await server.stop(0)
            await db.close()


def _meta() -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {mint(SUB, 'billing')}"),)


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(SUB, 'billing')}"}


async def _stream(stub: pb_grpc.CryptoStub, n: int) -> list[pb.EncryptResult]:
    items = [pb.EncryptItem(id=str(i), target=module_target(), plaintext=b"s") for i in range(n)]
    call = stub.EncryptStream(iter(items), metadata=_meta())
    return [result async for result in call]


async def test_every_answer_comes_after_its_event_is_committed(strict: Strict) -> None:
    stub, made = strict.ekms.stub, 0
    sealed = await stub.Encrypt(
        pb.EncryptRequest(target=module_target(), plaintext=b"one"), metadata=_meta()
    )
    made += 1
    assert await strict.audited() == made
    items = [pb.EncryptItem(id=str(i), plaintext=b"b") for i in range(5)]
    batch = await stub.EncryptBatch(
        pb.EncryptBatchRequest(target=module_target(), items=items), metadata=_meta()
    )
    assert all(r.status.code == 0 for r in batch.results)
    made += 5
    assert await strict.audited() == made
    for result in await _stream(stub, 3):
        assert result.status.code == 0
    made += 3
    assert await strict.audited() == made
    text = "ekms:v1:" + base64.urlsafe_b64encode(sealed.ciphertext).decode().rstrip("=")
    body = {"module": BILLING, "ciphertext": text}
    opened = await strict.api.post("/api/v1/crypto/decrypt", json=body, headers=_headers())
    assert opened.status_code == 200, opened.text
    made += 1
    assert await strict.audited() == made


async def test_calls_fail_closed_while_the_audit_store_refuses_writes(strict: Strict) -> None:
    stub = strict.ekms.stub
    await strict.db.execute(REFUSE)
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await stub.Encrypt(
            pb.EncryptRequest(target=module_target(), plaintext=b"x"), metadata=_meta()
        )
    assert error_info(unary.value) == (grpc.StatusCode.UNAVAILABLE, "AUDIT_UNAVAILABLE")
    with pytest.raises(grpc.aio.AioRpcError) as batch:
        await stub.EncryptBatch(
            pb.EncryptBatchRequest(
                target=module_target(), items=[pb.EncryptItem(id="1", plaintext=b"b")]
            ),
            metadata=_meta(),
        )
    assert error_info(batch.value) == (grpc.StatusCode.UNAVAILABLE, "AUDIT_UNAVAILABLE")
    streamed = await _stream(stub, 2)
    assert [item_reason(r.status) for r in streamed] == [
        (grpc.StatusCode.UNAVAILABLE, "AUDIT_UNAVAILABLE")
    ] * 2
    assert all(not r.ciphertext for r in streamed), "nothing returned before its event is durable"
    refused = await strict.api.post(
        "/api/v1/crypto/encrypt",
        json={"module": BILLING, "plaintext": "eA=="},
        headers=_headers(),
    )
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["reason"] == "AUDIT_UNAVAILABLE"
    assert "ciphertext" not in refused.json()
    assert await strict.audited() == 0

    await strict.db.execute(ACCEPT)
    answer = await stub.Encrypt(
        pb.EncryptRequest(target=module_target(), plaintext=b"y"), metadata=_meta()
    )
    assert answer.ciphertext
    # The refused calls' events were kept and written with it: the trail over-records, never
    # under-records (4 refused calls, 1 + 1 + 2 items over gRPC, 1 over REST, then this one).
    assert await strict.audited() == 6
    report = await verify_audit_chain(strict.ekms.container.ctx)
    assert report.ok, report.first_break
