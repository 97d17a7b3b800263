"""Ciphertext format v1: known-answer vectors, recomputed independently from the spec."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV

from app.domain import ciphertext as ct
from app.domain.errors import DecryptionFailed
from app.domain.keys import DataKey, KeyEncryptionKey
from app.domain.values import Algorithm

VECTORS = json.loads((Path(__file__).parents[2] / "docs" / "ciphertext-vectors.json").read_text())
FIELD_VECTORS = VECTORS["field_vectors"]


def _spec_encrypt(v: dict[str, object]) -> bytes:
    """The format as docs/ciphertext-format.md describes it, using only the raw primitives."""
    alg = {"AES-256-GCM": 1, "AES-256-SIV": 2}[str(v["algorithm"])]
    header = (
        bytes([1, alg]) + uuid.UUID(str(v["module_id"])).bytes + struct.pack(">I", v["key_version"])
    )
    binding, context = str(v["binding"]).encode(), bytes.fromhex(str(v["context_hex"]))
    aad = (
        header
        + struct.pack(">H", len(binding))
        + binding
        + struct.pack(">I", len(context))
        + context
    )
    key, plaintext = bytes.fromhex(str(v["key_hex"])), bytes.fromhex(str(v["plaintext_hex"]))
    if alg == 1:
        nonce = bytes.fromhex(str(v["nonce_hex"]))
        return header + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)
    return header + AESSIV(key).encrypt(plaintext, [aad])


def _data_key(v: dict[str, object]) -> DataKey:
    return DataKey(
        Algorithm.from_label(str(v["algorithm"])),
        uuid.UUID(str(v["module_id"])),
        int(str(v["key_version"])),
        bytes.fromhex(str(v["key_hex"])),
    )


@pytest.mark.parametrize("v", FIELD_VECTORS, ids=[str(v["name"]) for v in FIELD_VECTORS])
def test_known_answers(v: dict[str, object]) -> None:
    expected = bytes.fromhex(str(v["ciphertext_hex"]))
    assert _spec_encrypt(v) == expected
    produced = _data_key(v).encrypt(
        bytes.fromhex(str(v["plaintext_hex"])),
        str(v["binding"]).encode(),
        bytes.fromhex(str(v["context_hex"])),
        bytes.fromhex(str(v["nonce_hex"])),
    )
    assert produced == expected
    assert ct.to_text(expected) == v["ciphertext_text"]
    assert ct.from_text(str(v["ciphertext_text"])) == expected
    parsed = ct.parse(expected)
    assert parsed.header.module_id == uuid.UUID(str(v["module_id"]))
    assert parsed.header.key_version == v["key_version"]
    assert parsed.header.algorithm.label == v["algorithm"]
    plaintext = _data_key(v).decrypt(
        parsed, str(v["binding"]).encode(), bytes.fromhex(str(v["context_hex"]))
    )
    assert plaintext.hex() == v["plaintext_hex"]


def test_dek_wrap_vector() -> None:
    v = VECTORS["dek_wrap_vectors"][0]
    kek_bytes = bytes.fromhex(v["kek_hex"])
    kek = KeyEncryptionKey(uuid.UUID(v["kek_id"]), kek_bytes)
    module_id = uuid.UUID(v["module_id"])
    nonce = bytes.fromhex(v["nonce_hex"])
    dek = bytes.fromhex(v["dek_hex"])
    aad = b"ekms/dek/v1|" + module_id.bytes + struct.pack(">I", v["key_version"]) + kek.id.bytes
    spec = b"\x01" + nonce + AESGCM(kek_bytes).encrypt(nonce, dek, aad)
    assert spec.hex() == v["wrapped_hex"]
    assert kek.wrap(dek, module_id, v["key_version"], nonce).hex() == v["wrapped_hex"]
    assert kek.unwrap(spec, module_id, v["key_version"]) == dek
    with pytest.raises(DecryptionFailed):
        kek.unwrap(spec, module_id, v["key_version"] + 1)
    fingerprint = hmac.new(kek_bytes, b"ekms/kek-fingerprint/v1", hashlib.sha256).hexdigest()[:32]
    assert kek.fingerprint == fingerprint == v["kek_fingerprint"]


@pytest.mark.parametrize(
    "text",
    ["", "ekms:v2:AQE", "ekms:v1:!!!", "ekms:v1:AQE=", "ekms:v1:a+b/", "EKMS:V1:AQE", "ekms:v1:é"],
)
def test_bad_text_forms(text: str) -> None:
    with pytest.raises(DecryptionFailed):
        ct.parse(ct.from_text(text))


def test_reprs_hide_key_material() -> None:
    v = FIELD_VECTORS[0]
    key_hex = str(v["key_hex"])
    dk = _data_key(v)
    kek = KeyEncryptionKey(uuid.uuid4(), bytes.fromhex(key_hex))
    for r in (repr(dk), repr(kek)):
        assert key_hex not in r and key_hex[:16] not in r
