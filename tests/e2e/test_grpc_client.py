"""The Python client (``ekms_client``) over real channels: every helper against the real server,
errors as ``EkmsRpcError`` with code and reason, retries only on UNAVAILABLE, the default
deadline. Retry and deadline behaviour is driven by a scripted servicer behind the real
interceptors (no database needed), which also shows an unmapped error becoming INTERNAL."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from ekms_client import (
    AsyncEkmsClient,
    DecryptItem,
    EkmsClient,
    EkmsRpcError,
    EncryptItem,
    RetryPolicy,
    Target,
)
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc
from grpc_status import rpc_status

from app.domain.errors import AccessDenied, Reason, ServiceUnavailable, Unauthenticated
from app.domain.values import Caller
from app.grpc.auth import AuthInterceptor
from app.grpc.boundary import BoundaryInterceptor
from app.infra.tokens import VerifiedToken
from tests.e2e.conftest import BILLING, Ekms, mint

SALARY = Target.for_field("employees", "salary")
BILLING_MODULE = Target.for_module(BILLING)
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.005)


# --- against the real server ---------------------------------------------------------------------


async def test_async_client_every_helper(ekms: Ekms) -> None:
    async with AsyncEkmsClient(
        ekms.address, token=lambda: mint("billing-svc", "billing")
    ) as client:
        sealed = await client.encrypt(SALARY, b"85000", context=b"employee-42")
        assert sealed.key_version == 1
        opened = await client.decrypt(SALARY, sealed.ciphertext, context=b"employee-42")
        assert opened.plaintext == b"85000"
        assert "85000" not in repr(opened)
        rewrapped = await client.rewrap(SALARY, sealed.ciphertext, context=b"employee-42")
        assert (rewrapped.ciphertext, rewrapped.changed) == (sealed.ciphertext, False)

        batch = await client.encrypt_batch(
            [
                EncryptItem(b"a", id="1"),
                EncryptItem(b"b", target=BILLING_MODULE, id="2"),
                EncryptItem(b"c", target=Target.for_module("global.unknown"), id="3"),
            ],
            target=SALARY,
        )
        assert [r.ok for r in batch] == [True, True, False]
        assert batch[2].error is not None
        assert (batch[2].error.code, batch[2].error.reason) == (
            grpc.StatusCode.NOT_FOUND,
            "MODULE_NOT_FOUND",
        )
        with pytest.raises(EkmsRpcError):
            batch[2].unwrap()
        back = await client.decrypt_batch(
            [DecryptItem(batch[0].unwrap(), id="1"), DecryptItem(b"\x01junk", id="2")],
            target=SALARY,
        )
        assert back[0].unwrap() == b"a"
        assert back[1].error is not None and back[1].error.reason == "DECRYPTION_FAILED"

        async def items() -> AsyncIterator[EncryptItem]:
            for i in range(3):
                yield EncryptItem(f"v{i}".encode(), target=BILLING_MODULE, id=str(i))

        streamed = {r.id: r.unwrap() async for r in client.encrypt_stream(items())}
        decrypted = {
            r.id: r.unwrap()
            async for r in client.decrypt_stream(
                DecryptItem(blob, target=BILLING_MODULE, id=i) for i, blob in streamed.items()
            )
        }
        assert decrypted == {"0": b"v0", "1": b"v1", "2": b"v2"}


async def test_async_client_raises_ekms_rpc_error_with_code_and_reason(ekms: Ekms) -> None:
    async with AsyncEkmsClient(ekms.address, token=mint("ingest", "writer")) as client:
        sealed = await client.encrypt(BILLING_MODULE, b"x")
        with pytest.raises(EkmsRpcError) as denied:
            await client.decrypt(BILLING_MODULE, sealed.ciphertext)
    assert (denied.value.code, denied.value.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "MAP_REJECTED",
    )
    async with AsyncEkmsClient(ekms.address) as anonymous:
        with pytest.raises(EkmsRpcError) as refused:
            await anonymous.encrypt(BILLING_MODULE, b"x")
        with pytest.raises(EkmsRpcError) as stream_refused:
            async for _ in anonymous.encrypt_stream([EncryptItem(b"x", BILLING_MODULE)]):
                pass
    assert refused.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert stream_refused.value.reason == "UNAUTHENTICATED"


async def test_sync_client_every_helper(ekms: Ekms) -> None:
    token = mint("billing-svc", "billing")

    def use_it() -> None:
        with EkmsClient(ekms.address, token=token) as client:
            sealed = client.encrypt(SALARY, b"85000", context=b"e-1")
            assert client.decrypt(SALARY, sealed.ciphertext, context=b"e-1").plaintext == b"85000"
            assert client.rewrap(SALARY, sealed.ciphertext, context=b"e-1").key_version == 1
            batch = client.encrypt_batch([EncryptItem(b"a"), EncryptItem(b"b")], target=SALARY)
            opened = client.decrypt_batch([DecryptItem(r.unwrap()) for r in batch], target=SALARY)
            assert [r.unwrap() for r in opened] == [b"a", b"b"]
            streamed = list(
                client.encrypt_stream(EncryptItem(b"s", SALARY, id=str(i)) for i in range(3))
            )
            back = client.decrypt_stream(DecryptItem(r.unwrap(), SALARY, id=r.id) for r in streamed)
            assert sorted((r.id, r.unwrap()) for r in back) == [
                ("0", b"s"),
                ("1", b"s"),
                ("2", b"s"),
            ]
            with pytest.raises(EkmsRpcError) as err:
                client.decrypt(SALARY, b"\x01junk")
            assert (err.value.code, err.value.reason) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "DECRYPTION_FAILED",
            )

    await asyncio.to_thread(use_it)


# --- against a scripted servicer -----------------------------------------------------------------


class ScriptedCrypto(pb_grpc.CryptoServicer):
    """Encrypt: UNAVAILABLE while ``outages`` lasts; ``b"boom"`` is a bug; ``b"hang"`` waits."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.outages = 0
        self.release = asyncio.Event()

    async def Encrypt(self, request: pb.EncryptRequest, context: Any) -> pb.EncryptResponse:
        self.calls["Encrypt"] += 1
        if self.outages:
            self.outages -= 1
            raise ServiceUnavailable("the KMS is out of reach", reason=Reason.KMS_UNAVAILABLE)
        if request.plaintext == b"boom":
            raise RuntimeError("a bug that mentions secret=hunter2")
        if request.plaintext == b"hang":
            await self.release.wait()
        return pb.EncryptResponse(ciphertext=b"sealed:" + request.plaintext, key_version=7)

    async def Decrypt(self, request: pb.DecryptRequest, context: Any) -> pb.DecryptResponse:
        self.calls["Decrypt"] += 1
        raise AccessDenied("decrypt on module 'global.billing' is not allowed for this caller")


class AcceptGood:
    """The ``TokenVerifier`` port: "Bearer good" is a token that never expires."""

    async def verify_token(self, authorization: str | None) -> VerifiedToken:
        if authorization != "Bearer good":
            raise Unauthenticated("token signature is invalid")
        return VerifiedToken(Caller("tester"), not_before=-math.inf, not_after=math.inf)

    def check_still_valid(self, token: VerifiedToken) -> None:
        token.check_window(0.0)


class RecordingMetrics:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def observe(self, method: str, code: str, seconds: float) -> None:
        self.seen.append((method, code))


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedCrypto, RecordingMetrics, str]]:
    servicer, metrics = ScriptedCrypto(), RecordingMetrics()
    server = grpc.aio.server(
        interceptors=[BoundaryInterceptor(metrics), AuthInterceptor(AcceptGood())]
    )
    pb_grpc.add_CryptoServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, metrics, f"127.0.0.1:{port}"
    finally:
        servicer.release.set()
        await server.stop(0)


async def test_unavailable_is_retried_with_backoff_then_succeeds(
    scripted: tuple[ScriptedCrypto, RecordingMetrics, str],
) -> None:
    servicer, metrics, address = scripted
    servicer.outages = 2
    async with AsyncEkmsClient(address, token="good", retry=FAST_RETRY) as client:
        sealed = await client.encrypt(BILLING_MODULE, b"x")
    assert (sealed.ciphertext, sealed.key_version) == (b"sealed:x", 7)
    assert servicer.calls["Encrypt"] == 3
    assert metrics.seen == [("Encrypt", "UNAVAILABLE")] * 2 + [("Encrypt", "OK")]


async def test_retries_are_bounded_and_the_last_error_is_raised(
    scripted: tuple[ScriptedCrypto, RecordingMetrics, str],
) -> None:
    servicer, _, address = scripted
    servicer.outages = 10

    def sync_call() -> EkmsRpcError:
        with EkmsClient(address, token="good", retry=FAST_RETRY) as client:
            with pytest.raises(EkmsRpcError) as err:
                client.encrypt(BILLING_MODULE, b"x")
            return err.value

    error = await asyncio.to_thread(sync_call)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "KMS_UNAVAILABLE")
    assert servicer.calls["Encrypt"] == 3


async def test_other_errors_are_not_retried(
    scripted: tuple[ScriptedCrypto, RecordingMetrics, str],
) -> None:
    servicer, _, address = scripted
    async with AsyncEkmsClient(address, token="good", retry=FAST_RETRY) as client:
        with pytest.raises(EkmsRpcError) as denied:
            await client.decrypt(BILLING_MODULE, b"\x01")
        with pytest.raises(EkmsRpcError) as unauthenticated:
            await AsyncEkmsClient(channel=client._channel, token="bad").encrypt(
                BILLING_MODULE, b"x"
            )
    assert (denied.value.code, denied.value.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "MAP_REJECTED",
    )
    assert unauthenticated.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert servicer.calls == Counter({"Decrypt": 1})


async def test_the_default_deadline_ends_a_call_that_hangs(
    scripted: tuple[ScriptedCrypto, RecordingMetrics, str],
) -> None:
    servicer, _, address = scripted
    async with AsyncEkmsClient(address, token="good", deadline=0.2, retry=FAST_RETRY) as client:
        with pytest.raises(EkmsRpcError) as err:
            await client.encrypt(BILLING_MODULE, b"hang")
    assert err.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert servicer.calls["Encrypt"] == 1


async def test_an_unmapped_exception_is_internal_without_details(
    scripted: tuple[ScriptedCrypto, RecordingMetrics, str],
) -> None:
    _, metrics, address = scripted
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.CryptoStub(channel).Encrypt(
                pb.EncryptRequest(plaintext=b"boom"), metadata=(("authorization", "Bearer good"),)
            )
    assert err.value.code() is grpc.StatusCode.INTERNAL
    assert rpc_status.from_call(err.value) is None  # no details at all
    assert "correlation id" in (err.value.details() or "")
    assert "hunter2" not in (err.value.details() or "")
    assert metrics.seen == [("Encrypt", "INTERNAL")]
