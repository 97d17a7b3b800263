"""Health follows readiness; the external key's state reaches callers as FAILED_PRECONDITION;
a transient outage is UNAVAILABLE; shutdown is graceful."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import grpc
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from app.application.sync import sync_external_key
from app.infra.metrics import REGISTRY
from tests.e2e.conftest import Ekms, error_info, module_target

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _health(ekms: Ekms, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(ekms.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return int(response.status)


async def test_health_and_calls_follow_the_external_key(
    ekms: Ekms, kms_admin: Any, kms_key: str
) -> None:
    md = ekms.auth("billing-svc", "billing")
    target = module_target()
    blob = (
        await ekms.stub.Encrypt(pb.EncryptRequest(target=target, plaintext=b"x"), metadata=md)
    ).ciphertext
    watch = health_pb2_grpc.HealthStub(ekms.channel).Watch(
        health_pb2.HealthCheckRequest(service="ekms.v1.Crypto")
    )
    assert (await watch.read()).status == SERVING
    assert await _health(ekms) == SERVING

    kms_admin.disable_key(KeyId=kms_key)
    await sync_external_key(ekms.container.ctx)
    assert await _health(ekms) == NOT_SERVING
    assert await _health(ekms, "ekms.v1.Crypto") == NOT_SERVING
    assert (await watch.read()).status == NOT_SERVING
    for call in (
        ekms.stub.Encrypt(pb.EncryptRequest(target=target, plaintext=b"x"), metadata=md),
        ekms.stub.Decrypt(pb.DecryptRequest(target=target, ciphertext=blob), metadata=md),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert error_info(err.value) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "EXTERNAL_KEY_DISABLED",
        )
    batch = await ekms.stub.DecryptBatch(
        pb.DecryptBatchRequest(target=target, items=[pb.DecryptItem(ciphertext=blob)]), metadata=md
    )
    assert batch.results[0].status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]

    kms_admin.enable_key(KeyId=kms_key)
    await sync_external_key(ekms.container.ctx)
    assert await _health(ekms) == SERVING
    assert (await watch.read()).status == SERVING
    opened = await ekms.stub.Decrypt(pb.DecryptRequest(target=target, ciphertext=blob), metadata=md)
    assert opened.plaintext == b"x"
    watch.cancel()


async def test_a_database_outage_is_unavailable(ekms: Ekms, postgres_admin_url: str) -> None:
    md = ekms.auth("billing-svc", "billing")
    request = pb.EncryptRequest(target=module_target(), plaintext=b"x")
    await ekms.stub.Encrypt(request, metadata=md)
    # Served from memory: take the database away and make the chain reload.
    database = make_url(ekms.container.settings.effective_database_url).database
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    finally:
        await admin.close()
    ekms.container.ctx.chain.invalidate()
    # A warm chain keeps serving what it has cached; health says the replica is not ready.
    await ekms.stub.Encrypt(request, metadata=md)
    assert await _health(ekms) == NOT_SERVING
    # A cold chain (nothing cached) cannot load: a transient, retryable UNAVAILABLE.
    ekms.container.ctx.chain.purge()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ekms.stub.Encrypt(request, metadata=md)
    assert error_info(err.value) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")


def _encrypt_calls() -> float:
    """Encrypt calls that reached the servicer, whatever their outcome."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "ekms_grpc_requests"
        for sample in metric.samples
        if sample.name == "ekms_grpc_requests_total" and sample.labels["method"] == "Encrypt"
    )


async def test_graceful_shutdown_finishes_calls_in_flight_and_refuses_new_ones(
    ekms: Ekms,
) -> None:
    md = ekms.auth("billing-svc", "billing")
    stream = ekms.stub.EncryptStream(metadata=md)
    await stream.write(pb.EncryptItem(id="before", target=module_target(), plaintext=b"a"))
    assert (await stream.read()).status.code == 0

    handled = _encrypt_calls()
    stopping = asyncio.create_task(ekms.server.stop(grace=30))
    await ekms.server.draining.wait()

    async with ekms.new_channel() as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.CryptoStub(channel).Encrypt(
                pb.EncryptRequest(target=module_target(), plaintext=b"x"), metadata=md
            )
    # Refused before any handler ran: UNAVAILABLE, or CANCELLED when it raced the shutdown.
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    assert _encrypt_calls() == handled

    # The call in flight is still served, to its end.
    await stream.write(pb.EncryptItem(id="during", target=module_target(), plaintext=b"b"))
    during = await stream.read()
    assert (during.id, during.status.code) == ("during", 0)
    await stream.done_writing()
    assert await stream.code() is grpc.StatusCode.OK
    await stopping  # returns as soon as the last call ended, long before the grace period
