"""The blind-index MAC format (``app.domain.mac``) and the secrecy of data keys in reprs."""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid

import pytest

from app.application.dataplane.data_keys import DataKeyPair, OpenedDataKey, SealedDataKey
from app.domain import mac
from app.domain.errors import MacMismatch
from app.domain.keys import DataKey
from app.domain.values import Algorithm

MODULE = uuid.UUID("5d0f6c1e-9a8b-4c7d-8e2f-0a1b2c3d4e5f")
DEK = bytes(range(32))


def test_the_mac_is_hmac_sha256_of_the_documented_message_under_a_derived_key() -> None:
    key = DataKey(Algorithm.AES_256_GCM, MODULE, 3, DEK)
    tag = key.mac(b"field:employees.email", b"tenant-1", b"alice")
    header = struct.pack(">BB16sI", 1, 3, MODULE.bytes, 3)
    message = (
        header
        + struct.pack(">H", 21)
        + b"field:employees.email"
        + struct.pack(">I", 8)
        + b"tenant-1"
        + b"alice"
    )
    mac_key = mac.derive_mac_key(DEK, MODULE, 3)
    assert tag == header + hmac.digest(mac_key, message, "sha256")
    # The MAC key is not the DEK, and differs per version.
    assert mac_key != DEK and tag[22:] != hmac.digest(DEK, message, "sha256")
    assert mac.derive_mac_key(DEK, MODULE, 4) != mac_key


def test_hkdf_derivation_matches_rfc5869_by_hand() -> None:
    info = b"ekms/mac-key/v1|" + MODULE.bytes + struct.pack(">I", 1)
    prk = hmac.digest(b"\x00" * 32, DEK, hashlib.sha256)  # empty salt: HashLen zeros
    okm = hmac.digest(prk, info + b"\x01", hashlib.sha256)
    assert mac.derive_mac_key(DEK, MODULE, 1) == okm


@pytest.mark.parametrize(
    "tag",
    [b"", b"\x01\x03", b"\x02" + b"\x03" + bytes(52), b"\x01\x01" + bytes(52), bytes(54)],
    ids=["empty", "short", "format", "algorithm", "version-0"],
)
def test_a_malformed_mac_is_a_mismatch(tag: bytes) -> None:
    key = DataKey(Algorithm.AES_256_GCM, MODULE, 1, DEK)
    with pytest.raises(MacMismatch):
        key.verify_mac(tag, b"module:m", b"", b"v")


def test_verify_accepts_its_own_mac_and_nothing_else() -> None:
    key = DataKey(Algorithm.AES_256_SIV, MODULE, 1, bytes(64))
    tag = key.mac(b"module:m", b"c", b"v")
    key.verify_mac(tag, b"module:m", b"c", b"v")
    for binding, context, value in [
        (b"module:n", b"c", b"v"),
        (b"module:m", b"d", b"v"),
        (b"module:m", b"c", b"w"),
    ]:
        with pytest.raises(MacMismatch):
            key.verify_mac(tag, binding, context, value)


def test_data_key_reprs_never_show_the_plaintext_key() -> None:
    secret = bytes.fromhex("a1" * 32)
    pair = DataKeyPair(SealedDataKey(b"\x01sealed", 1), secret)
    opened = OpenedDataKey(secret, 1)
    for text in (repr(pair), repr(opened), str(pair)):
        assert secret.hex() not in text and repr(secret) not in text and "a1a1" not in text
