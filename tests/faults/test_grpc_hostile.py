"""Hostile gRPC input, beyond what tests/e2e/test_grpc_*.py already cover (those cover: a
unary request over the size limit, a batch over the item limit, bad targets, an oversized
context, tampered and misplaced ciphertexts, bad tokens).

Added here: requests that are not valid protobuf at all, unknown fields, empty values of every
kind, a batch request and a batch *response* over the size limit, metadata over the header
limit, deadlines that expire mid-stream, and a client that cancels. Each gets its matching
status (never INTERNAL), and after each the server still serves (an Encrypt succeeds and the
health service says SERVING). The gRPC metrics show no INTERNAL for the whole test.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.infra.metrics import REGISTRY
from tests.e2e.conftest import Ekms, error_info, item_reason, module_target

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def _internal_count() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "ekms_grpc_requests":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("code") == "INTERNAL":
                    total += sample.value
    return total


async def _still_serving(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    done = await ekms.stub.Encrypt(
        pb.EncryptRequest(target=module_target(), plaintext=b"still here"), metadata=md
    )
    assert done.key_version == 1
    health = health_pb2_grpc.HealthStub(ekms.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service="ekms.v1.Crypto"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def _code(call: object) -> tuple[grpc.StatusCode, str | None]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() is not grpc.StatusCode.INTERNAL, err.value.details()
    return error_info(err.value)


@pytest.fixture
def no_internal() -> object:
    before = _internal_count()
    yield
    assert _internal_count() == before, "a call ended INTERNAL"


def _raw(ekms: Ekms, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return ekms.channel.unary_unary(
        f"/ekms.v1.Crypto/{method}", request_serializer=None, response_deserializer=None
    )


async def test_unknown_fields_are_ignored(ekms: Ekms, no_internal: object) -> None:
    md = ekms.auth("billing-svc", "billing")
    request = pb.EncryptRequest(target=module_target(), plaintext=b"v", context=b"c")
    # Field 100 (length-delimited) and field 101 (varint): unknown to ekms.v1.
    extended = request.SerializeToString() + b"\xa2\x06\x03abc" + b"\xa8\x06\x2a"
    sealed = pb.EncryptResponse.FromString(await _raw(ekms, "Encrypt")(extended, metadata=md))
    back = await ekms.stub.Decrypt(
        pb.DecryptRequest(target=module_target(), ciphertext=sealed.ciphertext, context=b"c"),
        metadata=md,
    )
    assert back.plaintext == b"v"
    await _still_serving(ekms)


NOT_MESSAGES = {
    "garbage": b"\xff\xff\xff\xff",
    "truncated-field": b"\x0a\x05ab",
    "overlong-length": b"\x12\x80\x80\x80\x80\x10",
    "unterminated": b"\x0a" * 64,
}


async def test_bytes_that_are_no_message_are_refused_without_internal(
    ekms: Ekms, no_internal: object
) -> None:
    md = ekms.auth("svc", "billing")
    seen = set()
    for method in ("Encrypt", "Decrypt", "Rewrap", "EncryptBatch", "DecryptBatch"):
        for name, payload in NOT_MESSAGES.items():
            code, _ = await _code(_raw(ekms, method)(payload, metadata=md))
            seen.add(f"{method}/{name}: {code.name}")
        await _still_serving(ekms)
    print("undecodable requests:", sorted(seen))


async def test_bytes_that_are_no_message_are_invalid_argument(ekms: Ekms) -> None:
    code, _ = await _code(_raw(ekms, "Encrypt")(b"\xff\xff", metadata=ekms.auth("s", "billing")))
    assert code is INVALID


async def test_empty_values(ekms: Ekms, no_internal: object) -> None:
    md = ekms.auth("billing-svc", "billing")
    # An empty request names no target.
    assert (await _code(_raw(ekms, "Encrypt")(b"", metadata=md)))[0] is INVALID
    # Empty plaintext and context are values like any other.
    sealed = await ekms.stub.Encrypt(
        pb.EncryptRequest(target=module_target(), plaintext=b""), metadata=md
    )
    opened = await ekms.stub.Decrypt(
        pb.DecryptRequest(target=module_target(), ciphertext=sealed.ciphertext), metadata=md
    )
    assert opened.plaintext == b""
    # An empty ciphertext is one that does not verify.
    assert await _code(
        ekms.stub.Decrypt(pb.DecryptRequest(target=module_target()), metadata=md)
    ) == (INVALID, "DECRYPTION_FAILED")
    assert await _code(ekms.stub.Rewrap(pb.RewrapRequest(target=module_target()), metadata=md)) == (
        INVALID,
        "DECRYPTION_FAILED",
    )
    # Empty batches answer empty; an empty item gets its own status.
    assert len((await ekms.stub.EncryptBatch(pb.EncryptBatchRequest(), metadata=md)).results) == 0
    assert len((await ekms.stub.DecryptBatch(pb.DecryptBatchRequest(), metadata=md)).results) == 0
    batch = await ekms.stub.DecryptBatch(
        pb.DecryptBatchRequest(target=module_target(), items=[pb.DecryptItem()]), metadata=md
    )
    assert [item_reason(r.status) for r in batch.results] == [(INVALID, "DECRYPTION_FAILED")]
    # A stream closed without a message ends OK with no result.
    stream = ekms.stub.DecryptStream(metadata=md)
    await stream.done_writing()
    assert [r async for r in stream] == []
    assert await stream.code() is grpc.StatusCode.OK
    await _still_serving(ekms)


async def test_size_limits_on_batches_responses_and_metadata(
    ekms: Ekms, no_internal: object
) -> None:
    md = ekms.auth("billing-svc", "billing")
    limit = ekms.server.options.max_message_bytes
    items = ekms.server.options.max_batch_items
    # A batch request over the byte limit, with few items.
    big = pb.EncryptBatchRequest(
        target=module_target(), items=[pb.EncryptItem(plaintext=b"x" * (limit // 2))] * 3
    )
    assert (await _code(ekms.stub.EncryptBatch(big, metadata=md)))[0] is EXHAUSTED
    # A batch request just under the limit whose response (ciphertexts are longer) is over it.
    each = (limit - 1024) // items
    request = pb.EncryptBatchRequest(
        target=module_target(), items=[pb.EncryptItem(plaintext=b"y" * each)] * items
    )
    assert request.ByteSize() < limit
    assert (
        pb.EncryptBatchResponse(
            results=[pb.EncryptResult(ciphertext=b"c" * (each + 50), key_version=1)] * items
        ).ByteSize()
        > limit
    )
    assert (await _code(ekms.stub.EncryptBatch(request, metadata=md)))[0] is EXHAUSTED
    # An Authorization value over the token limit (8192 characters). It is also just over
    # grpc's soft metadata limit (8 KiB), past which grpc refuses a share of requests at
    # random before they reach ekms: either answer is the right one, never anything else.
    too_long = (("authorization", "Bearer " + "a" * 8200),)
    answers = set()
    for _ in range(20):
        answers.add(
            await _code(
                ekms.stub.Encrypt(pb.EncryptRequest(target=module_target()), metadata=too_long)
            )
        )
    assert answers <= {
        (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (EXHAUSTED, None),
    }, answers
    assert (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED") in answers
    # Metadata over the hard limit (16 KiB): always refused by grpc.
    huge = (("authorization", "Bearer " + "a" * 70_000),)
    assert (
        await _code(ekms.stub.Encrypt(pb.EncryptRequest(target=module_target()), metadata=huge))
    )[0] is EXHAUSTED
    many = tuple((f"x-junk-{i}", "v" * 100) for i in range(400))
    code, _ = await _code(
        ekms.stub.Encrypt(pb.EncryptRequest(target=module_target()), metadata=md + many)
    )
    assert code is EXHAUSTED
    await _still_serving(ekms)


async def test_deadlines_and_cancellation_mid_stream(ekms: Ekms, no_internal: object) -> None:
    md = ekms.auth("billing-svc", "billing")
    # A deadline that expires while the stream is open.
    stream = ekms.stub.EncryptStream(metadata=md, timeout=0.5)
    await stream.write(pb.EncryptItem(id="1", target=module_target(), plaintext=b"a"))
    assert (await stream.read()).status.code == 0
    await asyncio.sleep(0.8)
    assert await stream.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    # A client that walks away mid-stream.
    stream = ekms.stub.DecryptStream(metadata=md)
    await stream.write(pb.DecryptItem(id="1", target=module_target(), ciphertext=b"\x01"))
    await stream.read()
    stream.cancel()
    assert await stream.code() is grpc.StatusCode.CANCELLED
    # Many short-deadline batches at once: each ends OK or DEADLINE_EXCEEDED, nothing else.
    batch = pb.EncryptBatchRequest(
        target=module_target(), items=[pb.EncryptItem(plaintext=b"z" * 512)] * 50
    )
    calls = [ekms.stub.EncryptBatch(batch, metadata=md, timeout=0.002) for _ in range(40)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    codes = {
        r.code().name if isinstance(r, grpc.aio.AioRpcError) else type(r).__name__ for r in results
    }
    print("40 concurrent batches with a 2 ms deadline:", codes)
    assert codes <= {"EncryptBatchResponse", "DEADLINE_EXCEEDED"}
    await _still_serving(ekms)
