"""``ekms.v1.Crypto`` end to end: every RPC, the status codes and reasons, MAP outcomes, batches
mixing good and bad items, both stream directions, and the limits. See conftest for the world."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from app.application.modules import KeyAction, change_key_state, rotate_module_key
from app.infra.metrics import REGISTRY
from tests.e2e.conftest import (
    ADMIN,
    BILLING,
    DRAFT,
    Ekms,
    failure,
    field_target,
    item_reason,
    module_target,
    outcome,
)

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


async def _encrypt(ekms: Ekms, target: pb.Target, plaintext: bytes, context: bytes = b"") -> bytes:
    response = await ekms.stub.Encrypt(
        pb.EncryptRequest(target=target, plaintext=plaintext, context=context),
        metadata=ekms.auth("billing-svc", "billing"),
    )
    return bytes(response.ciphertext)


_failure = failure


# --- single-item RPCs ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", [module_target(), field_target()], ids=["module", "field"])
async def test_encrypt_then_decrypt_round_trips_with_context(ekms: Ekms, target: pb.Target) -> None:
    md = ekms.auth("billing-svc", "billing")
    sealed = await ekms.stub.Encrypt(
        pb.EncryptRequest(target=target, plaintext=b"85000", context=b"employee-42"), metadata=md
    )
    assert sealed.key_version == 1
    assert sealed.ciphertext[0] == 0x01  # binary form, format v1
    assert b"85000" not in sealed.ciphertext
    opened = await ekms.stub.Decrypt(
        pb.DecryptRequest(target=target, ciphertext=sealed.ciphertext, context=b"employee-42"),
        metadata=md,
    )
    assert (opened.plaintext, opened.key_version) == (b"85000", 1)


async def test_a_ciphertext_that_does_not_verify_is_invalid_argument(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    blob = await _encrypt(ekms, field_target(), b"secret", b"row-1")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    cases = [
        pb.DecryptRequest(target=field_target(), ciphertext=blob, context=b"row-2"),
        pb.DecryptRequest(target=field_target(), ciphertext=tampered, context=b"row-1"),
        pb.DecryptRequest(target=field_target(), ciphertext=blob[:10], context=b"row-1"),
        pb.DecryptRequest(target=module_target(), ciphertext=blob, context=b"row-1"),
    ]
    for request in cases:
        code, reason = await _failure(ekms.stub.Decrypt(request, metadata=md))
        assert (code, reason) == (INVALID, "DECRYPTION_FAILED")


async def test_malformed_requests_are_invalid_argument(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    bad_targets = [
        pb.Target(),
        pb.Target(module="Not A Module"),
        pb.Target(field=pb.Field(table="employees; drop", column="salary")),
    ]
    for target in bad_targets:
        code, reason = await _failure(
            ekms.stub.Encrypt(pb.EncryptRequest(target=target, plaintext=b"x"), metadata=md)
        )
        assert (code, reason) == (INVALID, "INVALID_INPUT")
    code, reason = await _failure(
        ekms.stub.Encrypt(
            pb.EncryptRequest(target=module_target(), plaintext=b"x", context=b"c" * 5000),
            metadata=md,
        )
    )
    assert (code, reason) == (INVALID, "INVALID_INPUT")


async def test_unknown_module_or_field_is_not_found(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    code, reason = await _failure(
        ekms.stub.Encrypt(
            pb.EncryptRequest(target=module_target("global.unknown"), plaintext=b"x"), metadata=md
        )
    )
    assert (code, reason) == (NOT_FOUND, "MODULE_NOT_FOUND")
    code, reason = await _failure(
        ekms.stub.Encrypt(
            pb.EncryptRequest(target=field_target("employees", "bonus"), plaintext=b"x"),
            metadata=md,
        )
    )
    assert (code, reason) == (NOT_FOUND, "FIELD_CONFIG_NOT_FOUND")


async def test_unusable_chain_parts_are_failed_precondition(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    code, reason = await _failure(
        ekms.stub.Encrypt(
            pb.EncryptRequest(target=field_target("employees", "legacy"), plaintext=b"x"),
            metadata=md,
        )
    )
    assert (code, reason) == (PRECONDITION, "FIELD_CONFIG_INACTIVE")
    code, reason = await _failure(
        ekms.stub.Encrypt(
            pb.EncryptRequest(target=module_target(DRAFT), plaintext=b"x"), metadata=md
        )
    )
    assert (code, reason) == (PRECONDITION, "MODULE_NOT_PUBLISHED")

    blob = await _encrypt(ekms, module_target(), b"x")
    await change_key_state(ekms.container.ctx, ADMIN, BILLING, 1, KeyAction.SUSPEND)
    code, reason = await _failure(
        ekms.stub.Decrypt(pb.DecryptRequest(target=module_target(), ciphertext=blob), metadata=md)
    )
    assert (code, reason) == (PRECONDITION, "KEY_VERSION_SUSPENDED")
    code, reason = await _failure(
        ekms.stub.Encrypt(pb.EncryptRequest(target=module_target(), plaintext=b"x"), metadata=md)
    )
    assert (code, reason) == (PRECONDITION, "NO_ACTIVE_KEY")


async def test_rewrap_moves_a_ciphertext_to_the_active_version_without_plaintext(
    ekms: Ekms,
) -> None:
    md = ekms.auth("billing-svc", "billing")
    old = await _encrypt(ekms, field_target(), b"85000", b"employee-42")
    same = await ekms.stub.Rewrap(
        pb.RewrapRequest(target=field_target(), ciphertext=old, context=b"employee-42"), metadata=md
    )
    assert (same.ciphertext, same.key_version, same.changed) == (old, 1, False)

    await rotate_module_key(ekms.container.ctx, ADMIN, BILLING)
    moved = await ekms.stub.Rewrap(
        pb.RewrapRequest(target=field_target(), ciphertext=old, context=b"employee-42"), metadata=md
    )
    assert (moved.key_version, moved.changed) == (2, True)
    assert moved.ciphertext != old and b"85000" not in moved.ciphertext
    opened = await ekms.stub.Decrypt(
        pb.DecryptRequest(
            target=field_target(), ciphertext=moved.ciphertext, context=b"employee-42"
        ),
        metadata=md,
    )
    assert (opened.plaintext, opened.key_version) == (b"85000", 2)
    code, reason = await _failure(
        ekms.stub.Rewrap(
            pb.RewrapRequest(target=field_target(), ciphertext=old, context=b"employee-7"),
            metadata=md,
        )
    )
    assert (code, reason) == (INVALID, "DECRYPTION_FAILED")


# --- access policies (MAPs) ---------------------------------------------------------------------


_outcome = outcome


async def test_map_outcomes(ekms: Ekms) -> None:
    blob = await _encrypt(ekms, module_target(), b"salary")
    encrypt = pb.EncryptRequest(target=module_target(), plaintext=b"x")
    decrypt = pb.DecryptRequest(target=module_target(), ciphertext=blob)
    rewrap = pb.RewrapRequest(target=module_target(), ciphertext=blob)

    async def encrypt_as(sub: str, *roles: str) -> tuple[grpc.StatusCode, str | None]:
        return await _outcome(ekms.stub.Encrypt(encrypt, metadata=ekms.auth(sub, *roles)))

    async def decrypt_as(sub: str, *roles: str) -> tuple[grpc.StatusCode, str | None]:
        return await _outcome(ekms.stub.Decrypt(decrypt, metadata=ekms.auth(sub, *roles)))

    async def rewrap_as(sub: str, *roles: str) -> tuple[grpc.StatusCode, str | None]:
        return await _outcome(ekms.stub.Rewrap(rewrap, metadata=ekms.auth(sub, *roles)))

    rejected = (DENIED, "MAP_REJECTED")
    # Track grants.
    assert await encrypt_as("billing-svc", "billing") == (OK, None)
    assert await decrypt_as("billing-svc", "billing") == (OK, None)
    assert await rewrap_as("billing-svc", "billing") == (OK, None)
    # A role with encrypt but not decrypt (nor rewrap): the module default (Reject) decides.
    assert await encrypt_as("ingest", "writer") == (OK, None)
    assert await decrypt_as("ingest", "writer") == rejected
    assert await rewrap_as("ingest", "writer") == rejected
    # An explicit Reject; and no matching policy at all.
    assert await encrypt_as("someone", "blocked") == rejected
    assert await encrypt_as("stranger", "marketing") == rejected
    # StrictReject beats a Track that also matches; Track beats a matching Reject.
    assert await encrypt_as("mallory", "billing") == rejected
    assert await decrypt_as("mallory", "billing") == rejected
    assert await decrypt_as("carol", "auditor") == (OK, None)
    assert await decrypt_as("dave", "auditor") == rejected


# --- batches -------------------------------------------------------------------------------------


async def test_encrypt_batch_mixes_good_and_bad_items(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    items = [
        pb.EncryptItem(id="default", plaintext=b"a", context=b"1"),
        pb.EncryptItem(id="field", target=field_target(), plaintext=b"b", context=b"2"),
        pb.EncryptItem(id="unknown", target=module_target("global.unknown"), plaintext=b"c"),
        pb.EncryptItem(id="bad-target", target=pb.Target(), plaintext=b"d"),
        pb.EncryptItem(id="inactive", target=field_target("employees", "legacy"), plaintext=b"e"),
        pb.EncryptItem(id="draft", target=module_target(DRAFT), plaintext=b"f"),
        pb.EncryptItem(id="module", target=module_target(), plaintext=b"g"),
    ]
    response = await ekms.stub.EncryptBatch(
        pb.EncryptBatchRequest(target=module_target(), items=items), metadata=md
    )
    got = {r.id: item_reason(r.status) for r in response.results}
    assert [r.id for r in response.results] == [i.id for i in items]
    assert got == {
        "default": (OK, None),
        "field": (OK, None),
        "unknown": (NOT_FOUND, "MODULE_NOT_FOUND"),
        "bad-target": (INVALID, "INVALID_INPUT"),
        "inactive": (PRECONDITION, "FIELD_CONFIG_INACTIVE"),
        "draft": (PRECONDITION, "MODULE_NOT_PUBLISHED"),
        "module": (OK, None),
    }
    failed = [r for r in response.results if r.status.code != 0]
    assert all(not r.ciphertext and not r.key_version for r in failed)

    sealed = {r.id: r.ciphertext for r in response.results if r.status.code == 0}
    decrypted = await ekms.stub.DecryptBatch(
        pb.DecryptBatchRequest(
            target=module_target(),
            items=[
                pb.DecryptItem(id="default", ciphertext=sealed["default"], context=b"1"),
                pb.DecryptItem(id="wrong-context", ciphertext=sealed["default"], context=b"9"),
                pb.DecryptItem(
                    id="field", target=field_target(), ciphertext=sealed["field"], context=b"2"
                ),
                pb.DecryptItem(id="garbage", ciphertext=b"\x01garbage"),
                pb.DecryptItem(id="module", ciphertext=sealed["module"]),
            ],
        ),
        metadata=md,
    )
    assert [(r.id, item_reason(r.status), r.plaintext) for r in decrypted.results] == [
        ("default", (OK, None), b"a"),
        ("wrong-context", (INVALID, "DECRYPTION_FAILED"), b""),
        ("field", (OK, None), b"b"),
        ("garbage", (INVALID, "DECRYPTION_FAILED"), b""),
        ("module", (OK, None), b"g"),
    ]


async def test_batch_items_without_target_need_a_default(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    response = await ekms.stub.EncryptBatch(
        pb.EncryptBatchRequest(items=[pb.EncryptItem(plaintext=b"x")]), metadata=md
    )
    assert [item_reason(r.status) for r in response.results] == [(INVALID, "INVALID_INPUT")]


async def test_a_caller_without_access_gets_a_denied_status_per_item(ekms: Ekms) -> None:
    response = await ekms.stub.EncryptBatch(
        pb.EncryptBatchRequest(
            target=module_target(), items=[pb.EncryptItem(plaintext=b"x"), pb.EncryptItem()]
        ),
        metadata=ekms.auth("stranger", "marketing"),
    )
    assert [item_reason(r.status) for r in response.results] == [(DENIED, "MAP_REJECTED")] * 2


async def test_batch_limits(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    limit = ekms.server.options.max_batch_items
    at_limit = pb.EncryptBatchRequest(
        target=module_target(), items=[pb.EncryptItem(plaintext=b"x")] * limit
    )
    assert len((await ekms.stub.EncryptBatch(at_limit, metadata=md)).results) == limit
    over = pb.EncryptBatchRequest(
        target=module_target(), items=[pb.EncryptItem(plaintext=b"x")] * (limit + 1)
    )
    assert await _failure(ekms.stub.EncryptBatch(over, metadata=md)) == (INVALID, "INVALID_INPUT")
    over_decrypt = pb.DecryptBatchRequest(items=[pb.DecryptItem()] * (limit + 1))
    code, _ = await _failure(ekms.stub.DecryptBatch(over_decrypt, metadata=md))
    assert code is INVALID


async def test_messages_over_the_size_limit_are_refused(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    too_big = ekms.server.options.max_message_bytes + 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ekms.stub.Encrypt(
            pb.EncryptRequest(target=module_target(), plaintext=b"x" * too_big), metadata=md
        )
    assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


# --- streams -------------------------------------------------------------------------------------


async def test_streams_in_both_directions_answer_every_item_by_id(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    call = ekms.stub.EncryptStream(metadata=md)
    plaintexts = {f"row-{i}": f"value {i}".encode() for i in range(5)}
    for item_id, value in plaintexts.items():
        await call.write(
            pb.EncryptItem(
                id=item_id, target=field_target(), plaintext=value, context=item_id.encode()
            )
        )
    await call.write(pb.EncryptItem(id="no-target", plaintext=b"x"))
    await call.write(
        pb.EncryptItem(id="unknown", target=module_target("global.nope"), plaintext=b"x")
    )
    await call.write(pb.EncryptItem(id="last", target=module_target(), plaintext=b"still served"))
    await call.done_writing()
    results = {r.id: r async for r in call}
    assert await call.code() is OK
    assert item_reason(results.pop("no-target").status) == (INVALID, "INVALID_INPUT")
    assert item_reason(results.pop("unknown").status) == (NOT_FOUND, "MODULE_NOT_FOUND")
    assert item_reason(results["last"].status) == (OK, None)
    assert set(results) == {*plaintexts, "last"}

    async def decrypt_items() -> AsyncIterator[pb.DecryptItem]:
        for item_id in plaintexts:
            yield pb.DecryptItem(
                id=item_id,
                target=field_target(),
                ciphertext=results[item_id].ciphertext,
                context=item_id.encode(),
            )
        yield pb.DecryptItem(
            id="wrong-context", target=field_target(), ciphertext=results["row-0"].ciphertext
        )
        yield pb.DecryptItem(
            id="last", target=module_target(), ciphertext=results["last"].ciphertext
        )

    opened = {r.id: r async for r in ekms.stub.DecryptStream(decrypt_items(), metadata=md)}
    assert {i: opened[i].plaintext for i in plaintexts} == plaintexts
    assert item_reason(opened["wrong-context"].status) == (INVALID, "DECRYPTION_FAILED")
    assert opened["last"].plaintext == b"still served"


async def test_a_stream_item_denied_by_policy_does_not_end_the_stream(ekms: Ekms) -> None:
    md = ekms.auth("ingest", "writer")  # may encrypt, not decrypt
    sealed = await ekms.stub.Encrypt(
        pb.EncryptRequest(target=module_target(), plaintext=b"x"), metadata=md
    )
    requests = [
        pb.DecryptItem(id="1", target=module_target(), ciphertext=sealed.ciphertext),
        pb.DecryptItem(id="2", target=module_target(), ciphertext=sealed.ciphertext),
    ]
    call = ekms.stub.DecryptStream(iter(requests), metadata=md)
    results = [(r.id, item_reason(r.status)) async for r in call]
    assert results == [("1", (DENIED, "MAP_REJECTED")), ("2", (DENIED, "MAP_REJECTED"))]
    assert await call.code() is OK


# --- metrics -------------------------------------------------------------------------------------


def _count(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value("ekms_grpc_requests_total", {"method": method, "code": code})
    return value or 0.0


async def test_calls_are_counted_by_method_and_code(ekms: Ekms) -> None:
    ok, denied = _count("Encrypt", "OK"), _count("Encrypt", "PERMISSION_DENIED")
    await _encrypt(ekms, module_target(), b"x")
    code, _ = await _failure(
        ekms.stub.Encrypt(
            pb.EncryptRequest(target=module_target(), plaintext=b"x"),
            metadata=ekms.auth("stranger"),
        )
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED
    # Counted before the status went out (a CI run under load once read the counter first).
    assert _count("Encrypt", "OK") == ok + 1
    assert _count("Encrypt", "PERMISSION_DENIED") == denied + 1
    assert REGISTRY.get_sample_value("ekms_grpc_request_seconds_count", {"method": "Encrypt"})
