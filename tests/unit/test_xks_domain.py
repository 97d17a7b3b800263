"""The external key store's pure parts: AES-GCM with the spec's AAD encoding, the CDIV of the
spec's Appendix C example, the request bodies' checks, the KEK sealing, the names' rules."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from app.application.xks import messages as m
from app.domain.errors import DecryptionFailed
from app.domain.keys import KeyEncryptionKey
from app.domain.xks import (
    XksErrorName,
    XksKey,
    XksKeyStatus,
    XksKeyUsage,
    XksOperation,
    XksRejected,
    key_binding,
    valid_access_key_id,
    valid_external_key_id,
    valid_prefix,
)
from app.domain.xks_crypto import CIPHERTEXT_METADATA, XksCiphertext, XksKeyMaterial, cdiv_sha256

IV = bytes(range(12))


def test_the_cdiv_of_the_spec_example() -> None:
    out = XksCiphertext(
        ciphertext=base64.b64decode("ghxkK1txeDNn3q8Y"),
        initialization_vector=base64.b64decode("HMrlRw85cAJUd5Ax"),
        authentication_tag=base64.b64decode("vBxN2ncH1oEkR8WVXpmyYQ=="),
        metadata=base64.b64decode("a2V5X3ZlcnNpb249MQ=="),
    )
    cdiv = cdiv_sha256(b"project=nile,department=marketing", out)
    assert base64.b64encode(cdiv).decode() == "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc="


def test_round_trip_binds_aad_and_metadata_with_their_lengths() -> None:
    key = XksKeyMaterial("k", b"\x07" * 32)
    out = key.encrypt(b"Hello World!", b"aad", IV)
    assert len(out.ciphertext) == 12 and len(out.authentication_tag) == 16
    assert out.metadata == CIPHERTEXT_METADATA
    assert key.decrypt(out, b"aad") == b"Hello World!"
    for aad, metadata in ((b"aad2", out.metadata), (None, out.metadata), (b"aad", b"")):
        with pytest.raises(DecryptionFailed):
            key.decrypt(XksCiphertext(out.ciphertext, IV, out.authentication_tag, metadata), aad)
    # Without lengths, the metadata moved into the AAD would give the same GCM input.
    moved = XksCiphertext(out.ciphertext, IV, out.authentication_tag, b"")
    with pytest.raises(DecryptionFailed):
        key.decrypt(moved, b"aad" + out.metadata)
    with pytest.raises(DecryptionFailed):
        key.decrypt(XksCiphertext(out.ciphertext, IV, out.authentication_tag[:12]), b"aad")
    assert "07" not in repr(key)


def test_sealing_is_bound_to_what_it_seals() -> None:
    kek = KeyEncryptionKey(uuid.uuid4(), b"\x01" * 32)
    a, b = uuid.uuid4(), uuid.uuid4()
    sealed = kek.seal(b"s" * 32, key_binding(a), IV)
    assert kek.unseal(sealed, key_binding(a)) == b"s" * 32
    with pytest.raises(DecryptionFailed):
        kek.unseal(sealed, key_binding(b))
    with pytest.raises(DecryptionFailed):
        KeyEncryptionKey(uuid.uuid4(), b"\x01" * 32).unseal(sealed, key_binding(a))
    # A DEK wrap and a seal never open as each other.
    with pytest.raises(DecryptionFailed):
        kek.unwrap(sealed, a, 1)


def test_spec_rules_for_names() -> None:
    assert valid_prefix("") and valid_prefix("/keystores/4a0d79d6-1d1b_x")
    assert not valid_prefix("/a/") and not valid_prefix("a") and not valid_prefix("/a b")
    assert not valid_prefix("/x" * 60) and not valid_prefix("/kms/xks/v1")
    assert valid_external_key_id("b42c7fbf-de61.441c_ae24")
    assert not valid_external_key_id("a/b") and not valid_external_key_id("x" * 129)
    assert valid_access_key_id("AKIAI2SFODNN7EXAMPLE")
    assert not valid_access_key_id("akiai2sfodnn7example") and not valid_access_key_id("A" * 19)


def test_secondary_authorisation_rules() -> None:
    key = XksKey(
        uuid.uuid4(),
        uuid.uuid4(),
        "k",
        frozenset(XksKeyUsage),
        XksKeyStatus.ENABLED,
        b"",
        uuid.uuid4(),
        allowed_principals=("arn:a",),
    )
    assert key.allows("arn:a", "Encrypt") and not key.allows("arn:b", "Encrypt")
    key.allowed_operations = ("Decrypt",)
    assert key.allows("arn:a", "Decrypt") and not key.allows("arn:a", "Encrypt")
    assert "sealed_key" not in repr(key)


def _meta(**over: object) -> dict[str, object]:
    return {
        "awsPrincipalArn": "arn:p",
        "kmsKeyArn": "arn:k",
        "kmsOperation": "Encrypt",
        "kmsRequestId": "r",
        **over,
    }


def _body(**data: object) -> bytes:
    return json.dumps(data).encode()


def test_metadata_fields_are_checked_per_operation() -> None:
    _, meta = m.parse_body(_body(requestMetadata=_meta(kmsViaService="ebs")), XksOperation.ENCRYPT)
    assert dict(meta.audit_pairs())["kmsViaService"] == "ebs"
    without_arn = _meta()
    del without_arn["kmsKeyArn"]
    m.parse_body(_body(requestMetadata=without_arn), XksOperation.METADATA)  # optional there
    with pytest.raises(XksRejected) as refused:
        m.parse_body(_body(requestMetadata=without_arn), XksOperation.ENCRYPT)
    assert refused.value.name is XksErrorName.VALIDATION
    with pytest.raises(XksRejected):
        m.parse_body(_body(requestMetadata=_meta(kmsRequestId=5)), XksOperation.DECRYPT)
    with pytest.raises(XksRejected):
        m.parse_body(_body(requestMetadata=_meta(awsPrincipalArn="a" * 2049)), XksOperation.ENCRYPT)
    # Health takes what it is given: the spec lists no ValidationException for it.
    _, health = m.parse_body(b"[]", XksOperation.HEALTH)
    assert health.audit_pairs() == ()


def test_encrypt_and_decrypt_bodies() -> None:
    ok = m.parse_encrypt({"plaintext": "SGVsbG8=", "encryptionAlgorithm": "AES_GCM"})
    assert ok.plaintext == b"Hello" and ok.aad is None and not ok.cdiv
    big = base64.b64encode(b"x" * (m.MAX_PLAINTEXT + 1)).decode()
    with pytest.raises(XksRejected) as too_big:
        m.parse_encrypt({"plaintext": big, "encryptionAlgorithm": "AES_GCM"})
    assert too_big.value.name is XksErrorName.UNSUPPORTED_OPERATION
    with pytest.raises(XksRejected) as cdiv:
        m.parse_encrypt(
            {
                "plaintext": "SGVsbG8=",
                "encryptionAlgorithm": "AES_GCM",
                "ciphertextDataIntegrityValueAlgorithm": "MD5",
            }
        )
    assert cdiv.value.name is XksErrorName.VALIDATION
    with pytest.raises(XksRejected):
        m.parse_decrypt({"ciphertext": "SGVsbG8=", "encryptionAlgorithm": "AES_GCM"})


def test_error_messages_are_printable_ascii_under_512() -> None:
    err = XksRejected(XksErrorName.INTERNAL, "é\n" + "x" * 600)
    assert len(err.message) < 512 and err.message.isascii() and "\n" not in err.message
