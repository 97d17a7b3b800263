"""``RewrapBatch`` and the envelope data keys over the real gRPC server (Postgres, moto's KMS
server): per-item status, the 0-KMS-call batch path, MAP enforcement per operation, bound
contexts, tampering, and rotation. See conftest for the world."""

from __future__ import annotations

import grpc
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from app.application.modules import rotate_module_key
from tests.e2e.conftest import ADMIN, Ekms, failure, field_target, item_reason, module_target

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
BATCH = 1000


@pytest.fixture
def e2e_options() -> dict[str, object]:
    return {"max_batch_items": 2 * BATCH, "max_message_bytes": 1 << 20}


def _kms_calls() -> float:
    from app.infra.metrics import REGISTRY

    return sum(
        s.value
        for metric in REGISTRY.collect()
        for s in metric.samples
        if s.name == "ekms_kms_calls_total" and s.value is not None
    )


async def _encrypt_many(ekms: Ekms, count: int) -> list[bytes]:
    items = [pb.EncryptItem(plaintext=b"v%d" % i, context=b"r%d" % i) for i in range(count)]
    response = await ekms.stub.EncryptBatch(
        pb.EncryptBatchRequest(target=field_target(), items=items),
        metadata=ekms.auth("billing-svc", "billing"),
    )
    assert all(r.status.code == 0 for r in response.results)
    return [bytes(r.ciphertext) for r in response.results]


# --- RewrapBatch ---------------------------------------------------------------------------------


async def test_rewrap_batch_moves_each_item_with_its_own_status(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    old = await _encrypt_many(ekms, 2)
    await rotate_module_key(ekms.container.ctx, ADMIN, "global.billing")
    items = [
        pb.RewrapItem(id="a", ciphertext=old[0], context=b"r0"),
        pb.RewrapItem(id="wrong-context", ciphertext=old[1], context=b"r9"),
        pb.RewrapItem(id="garbage", ciphertext=b"\x01garbage"),
        pb.RewrapItem(id="no-target", target=pb.Target(), ciphertext=old[1]),
        pb.RewrapItem(id="b", ciphertext=old[1], context=b"r1"),
    ]
    response = await ekms.stub.RewrapBatch(
        pb.RewrapBatchRequest(target=field_target(), items=items), metadata=md
    )
    got = [(r.id, item_reason(r.status), r.key_version, r.changed) for r in response.results]
    assert got == [
        ("a", (OK, None), 2, True),
        ("wrong-context", (INVALID, "DECRYPTION_FAILED"), 0, False),
        ("garbage", (INVALID, "DECRYPTION_FAILED"), 0, False),
        ("no-target", (INVALID, "INVALID_INPUT"), 0, False),
        ("b", (OK, None), 2, True),
    ]
    again = await ekms.stub.RewrapBatch(
        pb.RewrapBatchRequest(
            target=field_target(),
            items=[pb.RewrapItem(id="a", ciphertext=response.results[0].ciphertext, context=b"r0")],
        ),
        metadata=md,
    )
    assert [(r.key_version, r.changed) for r in again.results] == [(2, False)]
    opened = await ekms.stub.Decrypt(
        pb.DecryptRequest(
            target=field_target(), ciphertext=response.results[4].ciphertext, context=b"r1"
        ),
        metadata=md,
    )
    assert opened.plaintext == b"v1"


async def test_a_thousand_item_rewrap_batch_makes_no_kms_call(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    old = await _encrypt_many(ekms, BATCH)
    await rotate_module_key(ekms.container.ctx, ADMIN, "global.billing")
    warm = pb.RewrapItem(ciphertext=old[0], context=b"r0")  # unwraps version 2 once
    await ekms.stub.RewrapBatch(
        pb.RewrapBatchRequest(target=field_target(), items=[warm]), metadata=md
    )
    before = _kms_calls()
    assert before > 0  # the counter counts (configure, rotation, the warm-up)
    request = pb.RewrapBatchRequest(
        target=field_target(),
        items=[pb.RewrapItem(ciphertext=c, context=b"r%d" % i) for i, c in enumerate(old)],
    )
    response = await ekms.stub.RewrapBatch(request, metadata=md)
    assert _kms_calls() == before
    assert len(response.results) == BATCH
    assert all(r.status.code == 0 and r.key_version == 2 and r.changed for r in response.results)


async def test_rewrap_batch_needs_the_rewrap_operation_and_obeys_the_batch_limit(
    ekms: Ekms,
) -> None:
    old = await _encrypt_many(ekms, 1)
    request = pb.RewrapBatchRequest(
        target=field_target(), items=[pb.RewrapItem(ciphertext=old[0], context=b"r0")]
    )
    denied = await ekms.stub.RewrapBatch(request, metadata=ekms.auth("ingest", "writer"))
    assert [item_reason(r.status) for r in denied.results] == [(DENIED, "MAP_REJECTED")]
    over = pb.RewrapBatchRequest(target=field_target(), items=[pb.RewrapItem()] * (2 * BATCH + 1))
    md = ekms.auth("billing-svc", "billing")
    assert await failure(ekms.stub.RewrapBatch(over, metadata=md)) == (INVALID, "INVALID_INPUT")


# --- data keys -----------------------------------------------------------------------------------


async def test_a_generated_data_key_opens_with_its_target_and_context(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    made = await ekms.stub.GenerateDataKey(
        pb.GenerateDataKeyRequest(target=module_target(), context=b"doc-7"), metadata=md
    )
    assert len(made.plaintext_key) == 32 and made.key_version == 1
    assert made.sealed_key[0] == 0x01 and made.plaintext_key not in made.sealed_key
    opened = await ekms.stub.DecryptDataKey(
        pb.DecryptDataKeyRequest(
            target=module_target(), sealed_key=made.sealed_key, context=b"doc-7"
        ),
        metadata=md,
    )
    assert (opened.plaintext_key, opened.key_version) == (made.plaintext_key, 1)
    short = await ekms.stub.GenerateDataKeyWithoutPlaintext(
        pb.GenerateDataKeyRequest(target=field_target(), key_spec=pb.AES_128), metadata=md
    )
    opened = await ekms.stub.DecryptDataKey(
        pb.DecryptDataKeyRequest(target=field_target(), sealed_key=short.sealed_key), metadata=md
    )
    assert len(opened.plaintext_key) == 16 and opened.key_version == short.key_version == 1
    other = await ekms.stub.GenerateDataKey(
        pb.GenerateDataKeyRequest(target=module_target(), context=b"doc-7"), metadata=md
    )
    assert other.plaintext_key != made.plaintext_key


async def test_a_sealed_data_key_that_does_not_verify_is_one_opaque_error(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    made = await ekms.stub.GenerateDataKey(
        pb.GenerateDataKeyRequest(target=field_target(), context=b"doc-7"), metadata=md
    )
    sealed = made.sealed_key
    value = await ekms.stub.Encrypt(  # a field value, not a data key
        pb.EncryptRequest(target=field_target(), plaintext=b"85000", context=b"doc-7"), metadata=md
    )
    cases = [
        (field_target(), sealed, b"doc-8"),
        (field_target(), sealed[:-1] + bytes([sealed[-1] ^ 1]), b"doc-7"),
        (field_target(), sealed[:30], b"doc-7"),
        (module_target(), sealed, b"doc-7"),
        (field_target(), value.ciphertext, b"doc-7"),
    ]
    for target, blob, context in cases:
        request = pb.DecryptDataKeyRequest(target=target, sealed_key=blob, context=context)
        assert await failure(ekms.stub.DecryptDataKey(request, metadata=md)) == (
            INVALID,
            "DECRYPTION_FAILED",
        )


async def test_data_keys_are_authorised_as_encrypt_and_decrypt(ekms: Ekms) -> None:
    generate = pb.GenerateDataKeyRequest(target=module_target())
    sealed = (
        await ekms.stub.GenerateDataKeyWithoutPlaintext(
            generate,
            metadata=ekms.auth("ingest", "writer"),  # encrypt only: may generate
        )
    ).sealed_key
    open_it = pb.DecryptDataKeyRequest(target=module_target(), sealed_key=sealed)
    rejected = (DENIED, "MAP_REJECTED")
    assert (
        await failure(ekms.stub.DecryptDataKey(open_it, metadata=ekms.auth("ingest", "writer")))
        == rejected
    )
    for sub, role in [("someone", "blocked"), ("stranger", "marketing")]:
        md = ekms.auth(sub, role)
        assert await failure(ekms.stub.GenerateDataKey(generate, metadata=md)) == rejected
        assert (
            await failure(ekms.stub.GenerateDataKeyWithoutPlaintext(generate, metadata=md))
            == rejected
        )
    # carol may decrypt (a Track for her subject) but not encrypt.
    carol = ekms.auth("carol", "auditor")
    assert len((await ekms.stub.DecryptDataKey(open_it, metadata=carol)).plaintext_key) == 32
    assert await failure(ekms.stub.GenerateDataKey(generate, metadata=carol)) == rejected
    bad_spec = pb.GenerateDataKeyRequest(target=module_target(), key_spec=7)  # type: ignore[arg-type]
    md = ekms.auth("billing-svc", "billing")
    assert await failure(ekms.stub.GenerateDataKey(bad_spec, metadata=md)) == (
        INVALID,
        "INVALID_INPUT",
    )


async def test_a_data_key_sealed_under_v1_opens_after_rotation_and_after_rewrap(
    ekms: Ekms,
) -> None:
    md = ekms.auth("billing-svc", "billing")
    made = await ekms.stub.GenerateDataKey(
        pb.GenerateDataKeyRequest(target=field_target(), context=b"doc-7"), metadata=md
    )
    await rotate_module_key(ekms.container.ctx, ADMIN, "global.billing")
    opened = await ekms.stub.DecryptDataKey(
        pb.DecryptDataKeyRequest(
            target=field_target(), sealed_key=made.sealed_key, context=b"doc-7"
        ),
        metadata=md,
    )
    assert (opened.plaintext_key, opened.key_version) == (made.plaintext_key, 1)
    moved = await ekms.stub.Rewrap(
        pb.RewrapRequest(target=field_target(), ciphertext=made.sealed_key, context=b"doc-7"),
        metadata=md,
    )
    assert (moved.key_version, moved.changed) == (2, True)
    opened = await ekms.stub.DecryptDataKey(
        pb.DecryptDataKeyRequest(
            target=field_target(), sealed_key=moved.ciphertext, context=b"doc-7"
        ),
        metadata=md,
    )
    assert (opened.plaintext_key, opened.key_version) == (made.plaintext_key, 2)
