"""``ComputeMac`` and ``VerifyMac`` (blind indexes) over the real gRPC server (Postgres, moto's
KMS server): equality under one target and context, the one opaque MAC_MISMATCH, the MAP
operation ``mac``, and rotation. See conftest for the world."""

from __future__ import annotations

import grpc
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from app.application.modules import rotate_module_key
from app.application.policies import PolicyInput, create_policy
from app.domain.values import AccessResult, Operation, TargetType
from tests.e2e.conftest import ADMIN, BILLING, Ekms, field_target, module_target, outcome

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
MISMATCH = (INVALID, "MAC_MISMATCH")


_outcome = outcome


async def _mac(ekms: Ekms, target: pb.Target, value: bytes, context: bytes = b"") -> bytes:
    response = await ekms.stub.ComputeMac(
        pb.ComputeMacRequest(target=target, value=value, context=context),
        metadata=ekms.auth("billing-svc", "billing"),
    )
    return bytes(response.mac)


async def _verify(
    ekms: Ekms, target: pb.Target, value: bytes, mac: bytes, context: bytes = b""
) -> tuple[grpc.StatusCode, str | None]:
    request = pb.VerifyMacRequest(target=target, value=value, mac=mac, context=context)
    return await _outcome(
        ekms.stub.VerifyMac(request, metadata=ekms.auth("billing-svc", "billing"))
    )


async def test_equal_values_give_equal_macs_for_one_target_and_context(ekms: Ekms) -> None:
    first = await _mac(ekms, field_target(), b"alice@example.com", b"tenant-1")
    assert len(first) == 54 and first[:2] == b"\x01\x03"
    assert await _mac(ekms, field_target(), b"alice@example.com", b"tenant-1") == first
    others = {
        await _mac(ekms, field_target(), b"bob@example.com", b"tenant-1"),
        await _mac(ekms, field_target(), b"alice@example.com", b"tenant-2"),
        await _mac(ekms, module_target(), b"alice@example.com", b"tenant-1"),
    }
    assert first not in others and len(others) == 3
    assert await _verify(ekms, field_target(), b"alice@example.com", first, b"tenant-1") == (
        OK,
        None,
    )


async def test_a_mac_that_does_not_verify_is_one_opaque_error(ekms: Ekms) -> None:
    mac = await _mac(ekms, field_target(), b"alice", b"t1")
    cases = [
        (field_target(), b"alicE", mac, b"t1"),
        (field_target(), b"alice", mac, b"t2"),
        (module_target(), b"alice", mac, b"t1"),
        (field_target(), b"alice", mac[:-1] + bytes([mac[-1] ^ 1]), b"t1"),
        (field_target(), b"alice", mac[:21] + b"\x09" + mac[22:], b"t1"),  # key version 9
        (field_target(), b"alice", mac[:5] + bytes([mac[5] ^ 1]) + mac[6:], b"t1"),  # module id
        (field_target(), b"alice", b"\x01\x01" + mac[2:], b"t1"),  # algorithm byte
        (field_target(), b"alice", mac[:40], b"t1"),
        (field_target(), b"alice", b"", b"t1"),
    ]
    for target, value, tag, context in cases:
        assert await _verify(ekms, target, value, tag, context) == MISMATCH


async def test_macs_need_the_mac_operation(ekms: Ekms) -> None:
    await create_policy(
        ekms.container.ctx,
        ADMIN,
        BILLING,
        PolicyInput(TargetType.ROLE, "indexer", frozenset({Operation.MAC}), AccessResult.TRACK),
    )
    mac = await _mac(ekms, module_target(), b"alice")
    compute = pb.ComputeMacRequest(target=module_target(), value=b"alice")
    verify = pb.VerifyMacRequest(target=module_target(), value=b"alice", mac=mac)
    rejected = (DENIED, "MAP_REJECTED")
    for sub, role in [("ingest", "writer"), ("carol", "auditor"), ("stranger", "marketing")]:
        md = ekms.auth(sub, role)
        assert await _outcome(ekms.stub.ComputeMac(compute, metadata=md)) == rejected
        assert await _outcome(ekms.stub.VerifyMac(verify, metadata=md)) == rejected
    indexer = ekms.auth("search-svc", "indexer")
    made = await ekms.stub.ComputeMac(compute, metadata=indexer)
    assert made.mac == mac
    assert (await ekms.stub.VerifyMac(verify, metadata=indexer)).key_version == 1
    encrypt = pb.EncryptRequest(target=module_target(), plaintext=b"alice")
    assert await _outcome(ekms.stub.Encrypt(encrypt, metadata=indexer)) == rejected


async def test_a_mac_made_under_v1_verifies_after_rotation_and_after_rewrap(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    v1 = await _mac(ekms, field_target(), b"alice", b"t1")
    blob = await ekms.stub.Encrypt(
        pb.EncryptRequest(target=field_target(), plaintext=b"alice", context=b"row-1"), metadata=md
    )
    await rotate_module_key(ekms.container.ctx, ADMIN, BILLING)
    verified = await ekms.stub.VerifyMac(
        pb.VerifyMacRequest(target=field_target(), value=b"alice", mac=v1, context=b"t1"),
        metadata=md,
    )
    assert verified.key_version == 1
    v2 = await ekms.stub.ComputeMac(
        pb.ComputeMacRequest(target=field_target(), value=b"alice", context=b"t1"), metadata=md
    )
    assert v2.key_version == 2 and v2.mac != v1
    old = await ekms.stub.ComputeMac(
        pb.ComputeMacRequest(target=field_target(), value=b"alice", context=b"t1", key_version=1),
        metadata=md,
    )
    assert (old.mac, old.key_version) == (v1, 1)
    moved = await ekms.stub.Rewrap(
        pb.RewrapRequest(target=field_target(), ciphertext=blob.ciphertext, context=b"row-1"),
        metadata=md,
    )
    assert moved.key_version == 2
    assert await _verify(ekms, field_target(), b"alice", v1, b"t1") == (OK, None)
    assert await _verify(ekms, field_target(), b"alice", v2.mac, b"t1") == (OK, None)
    unknown = pb.ComputeMacRequest(target=field_target(), value=b"alice", key_version=7)
    assert await _outcome(ekms.stub.ComputeMac(unknown, metadata=md)) == (
        grpc.StatusCode.NOT_FOUND,
        "KEY_VERSION_NOT_FOUND",
    )


async def test_a_context_over_the_limit_is_invalid_input(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    compute = pb.ComputeMacRequest(target=module_target(), value=b"x", context=b"c" * 4097)
    assert await _outcome(ekms.stub.ComputeMac(compute, metadata=md)) == (INVALID, "INVALID_INPUT")
    mac = await _mac(ekms, module_target(), b"x")
    verify = pb.VerifyMacRequest(target=module_target(), value=b"x", mac=mac, context=b"c" * 4097)
    assert await _outcome(ekms.stub.VerifyMac(verify, metadata=md)) == (INVALID, "INVALID_INPUT")
