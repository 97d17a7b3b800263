"""Finding 11 end to end: per-caller rate limits and stream caps over real gRPC and REST servers.

The rates are tiny (one token per 100 s), so nothing here depends on how fast the test runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from app.application.limits import DataPlaneLimits
from app.bootstrap import build_grpc_server, running
from tests.e2e.conftest import Ekms, build_world, e2e_settings, error_info, module_target
from tests.e2e.rest_support import APP_ROLE, MODULE, Rest, auth, b64, serve, settings_for

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
SLOW = {"rate_limit_per_caller": 0.01, "rate_limit_burst": 2}


@pytest.fixture
async def limited(
    pg_url: str, moto_server: str, aws_env: str, kms_key: str, tmp_path: Path
) -> AsyncIterator[Ekms]:
    settings = e2e_settings(
        pg_url, moto_server, aws_env, tmp_path, max_streams_per_caller=2, max_streams=3, **SLOW
    )
    async with running(settings) as container:
        await build_world(container, kms_key)
        server = build_grpc_server(container)
        port = await server.start()
        address = f"127.0.0.1:{port}"
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                yield Ekms(container, server, address, channel, pb_grpc.CryptoStub(channel))
        finally:
            await server.stop(0)


def _encrypt(value: bytes = b"x") -> pb.EncryptRequest:
    return pb.EncryptRequest(target=module_target(), plaintext=value)


async def test_grpc_past_the_rate_is_resource_exhausted_with_a_retry_delay(
    limited: Ekms,
) -> None:
    md = limited.auth("billing-svc", "billing")
    for _ in range(2):
        await limited.stub.Encrypt(_encrypt(), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await limited.stub.Encrypt(_encrypt(), metadata=md)
    assert error_info(err.value) == (EXHAUSTED, "RATE_LIMITED")
    status = rpc_status.from_call(err.value)
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details)
    assert 90 < retry.retry_delay.ToNanoseconds() / 1e9 <= 100
    # Another caller has its own bucket.
    await limited.stub.Encrypt(_encrypt(), metadata=limited.auth("other-svc", "billing"))


async def _open(ekms: Ekms, md: tuple[tuple[str, str], ...]) -> grpc.aio.StreamStreamCall:
    """An EncryptStream that has certainly started on the server: one item answered."""
    call = ekms.stub.EncryptStream(metadata=md)
    await call.write(pb.EncryptItem(id="1", target=module_target(), plaintext=b"x"))
    result = await call.read()
    assert result.id == "1"
    return call


async def _refused(ekms: Ekms, md: tuple[tuple[str, str], ...]) -> None:
    call = ekms.stub.EncryptStream(metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert error_info(err.value) == (EXHAUSTED, "TOO_MANY_STREAMS")


async def _finish(call: grpc.aio.StreamStreamCall) -> None:
    """End a stream normally: no more items, the server answers OK."""
    await call.done_writing()
    assert await call.read() is grpc.aio.EOF
    assert await call.code() is grpc.StatusCode.OK


async def _wait_released(ekms: Ekms, subject: str, held: int) -> None:
    """Until the server has seen a cancellation (it hears it asynchronously)."""
    slots = ekms.container.crypto.limits.streams
    for _ in range(1000):
        if slots.held_by(subject) == held:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{subject} still holds {slots.held_by(subject)} streams")


async def test_grpc_streams_past_the_caps_are_refused_and_closing_one_frees_a_slot(
    limited: Ekms,
) -> None:
    crypto = limited.container.crypto
    crypto.limits = DataPlaneLimits(streams=crypto.limits.streams)  # the caps alone, no rate
    alice, bob = limited.auth("alice", "billing"), limited.auth("bob", "billing")
    a1, a2 = await _open(limited, alice), await _open(limited, alice)
    await _refused(limited, alice)  # per caller: 2
    b1 = await _open(limited, bob)
    await _refused(limited, bob)  # in all: 3
    await _finish(a1)
    a3 = await _open(limited, alice)  # the ended stream gave its slot back
    a2.cancel()
    await _wait_released(limited, "alice", 1)
    a4 = await _open(limited, alice)  # and so did the cancelled one
    for call in (a3, a4, b1):
        await _finish(call)
    await _wait_released(limited, "alice", 0)
    assert limited.container.crypto.limits.streams.open_streams == 0


async def test_rest_past_the_rate_is_429_with_retry_after_and_a_problem(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with serve(settings_for(sqlite_url, tmp_path, **SLOW)) as live:
        async with httpx.AsyncClient(base_url=live.url) as client:
            await Rest(client, live.container).seed()
            body = {"module": MODULE, "plaintext": b64(b"85000")}
            headers = auth(APP_ROLE, sub="payroll-svc")
            for _ in range(2):
                ok = await client.post("/api/v1/crypto/encrypt", json=body, headers=headers)
                assert ok.status_code == 200, ok.text
            refused = await client.post("/api/v1/crypto/encrypt", json=body, headers=headers)
    assert refused.status_code == 429
    assert 90 < int(refused.headers["Retry-After"]) <= 100
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["status"] == 429 and problem["reason"] == "RATE_LIMITED"
    assert problem["type"].endswith("/rate_limited")
