"""The KMIP provider's pure parts: TTLV, response parsing, the wrapped format, errors, settings."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

import pytest

from app.domain.errors import (
    DecryptionFailed,
    InvalidInput,
    KeyUnavailable,
    Reason,
    ServiceUnavailable,
)
from app.infra.kms.kmip import KmipSettings, _format, _protocol
from app.infra.kms.kmip._errors import translate_kmip_failure, translate_transport_error
from app.infra.kms.kmip._protocol import KmipOperationFailed, Operation, Tag
from app.infra.kms.kmip._ttlv import (
    Item,
    TtlvError,
    Type,
    byte_string,
    decode,
    encode,
    enumeration,
    integer,
    structure,
    text,
)
from app.infra.settings import Settings

SECRET = bytes(range(32))


def test_ttlv_round_trips_every_type_it_writes() -> None:
    message = structure(
        0x420078,
        integer(0x42006A, -7),
        enumeration(0x42005C, 0x1F),
        text(0x420094, "uid-é"),
        byte_string(0x4200C2, b"\x01\x02\x03"),
        Item(0x420092, Type.DATE_TIME, 1_700_000_000),
        Item(0x420006, Type.BOOLEAN, True),
        structure(0x42002B),
    )

    encoded = encode(message)

    assert len(encoded) % 8 == 0
    assert decode(encoded) == message


def test_ttlv_matches_the_spec_example() -> None:
    # KMIP 1.4 spec 9.1.2: an Integer 8 tagged 0x420020.
    assert encode(integer(0x420020, 8)).hex() == "42002002000000040000000800000000"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("420020020000000400000008"),  # value cut short
        bytes.fromhex("42002002000000040000000800000000") + b"\x00",  # trailing byte
        bytes.fromhex("4200200b0000000400000008000000000"[:32]),  # unknown type 0x0b
        bytes.fromhex("42002002000000080000000800000000"),  # an Integer of 8 bytes
        bytes.fromhex("4200780100000010") + bytes.fromhex("4200200200000004"),  # short child
        bytes.fromhex("42007807000000020000000000000000")[:8] + b"\xff\xfe" + b"\x00" * 6,
    ],
)
def test_ttlv_refuses_malformed_input(data: bytes) -> None:
    with pytest.raises(TtlvError):
        decode(data)


def test_ttlv_refuses_deep_nesting() -> None:
    item = integer(0x420020, 1)
    for _ in range(20):
        item = structure(0x420078, item)
    with pytest.raises(TtlvError):
        decode(encode(item))


def test_item_repr_never_shows_bytes() -> None:
    assert SECRET.hex() not in repr(byte_string(0x4200C2, SECRET))
    assert repr(SECRET) not in repr(structure(0x42007C, byte_string(0x4200C2, SECRET)))


def _response(operation: int, status: int, *payload: Item, reason: int | None = None) -> bytes:
    items = [enumeration(Tag.OPERATION, operation), enumeration(Tag.RESULT_STATUS, status)]
    if reason is not None:
        items.append(enumeration(Tag.RESULT_REASON, reason))
        items.append(text(Tag.RESULT_MESSAGE, f"server text quoting {SECRET.hex()}"))
    items.append(structure(Tag.RESPONSE_PAYLOAD, *payload))
    return encode(
        structure(
            Tag.RESPONSE_MESSAGE,
            structure(Tag.RESPONSE_HEADER, integer(Tag.BATCH_COUNT, 1)),
            structure(Tag.BATCH_ITEM, *items),
        )
    )


def test_a_failed_response_keeps_the_reason_and_drops_the_server_text() -> None:
    with pytest.raises(KmipOperationFailed) as info:
        _protocol.parse_decrypt(_response(Operation.DECRYPT, 1, reason=256))

    assert info.value.result_reason == 256
    assert SECRET.hex() not in str(info.value)


def test_a_response_to_another_operation_is_refused() -> None:
    data = _response(Operation.ENCRYPT, 0, byte_string(Tag.DATA, b"x"))
    with pytest.raises(TtlvError):
        _protocol.parse_decrypt(data)


def test_attributes_follow_only_the_replacement_link() -> None:
    def link(kind: int, uid: str) -> Item:
        return structure(
            Tag.ATTRIBUTE,
            text(Tag.ATTRIBUTE_NAME, "Link"),
            structure(
                Tag.ATTRIBUTE_VALUE,
                enumeration(Tag.LINK_TYPE, kind),
                text(Tag.LINKED_OBJECT_IDENTIFIER, uid),
            ),
        )

    data = _response(
        Operation.GET_ATTRIBUTES,
        0,
        text(Tag.UNIQUE_IDENTIFIER, "2"),
        structure(
            Tag.ATTRIBUTE,
            text(Tag.ATTRIBUTE_NAME, "State"),
            enumeration(Tag.ATTRIBUTE_VALUE, 2),
        ),
        link(0x107, "1"),  # Replaced Object Link: where it came from, not where it goes
        link(0x106, "3"),
    )

    attributes = _protocol.parse_key_attributes(data)

    assert (attributes.uid, attributes.state, attributes.replacement) == ("2", 2, "3")


# --- the wrapped format ---------------------------------------------------------------------


def test_a_digest_for_another_context_is_refused_even_if_the_server_ignored_the_aad() -> None:
    # What a server that drops the AAD would hand back: the plaintext sealed for context A.
    sealed_for_a = _format.seal_plaintext(_format.aad("k", "k", {"c": "a"}), SECRET)

    assert _format.open_plaintext(_format.aad("k", "k", {"c": "a"}), sealed_for_a) == SECRET
    for other in (
        _format.aad("k", "k", {"c": "b"}),
        _format.aad("k2", "k", {"c": "a"}),
        _format.aad("k", "k2", {"c": "a"}),
    ):
        with pytest.raises(DecryptionFailed):
            _format.open_plaintext(other, sealed_for_a)


def test_aads_are_unambiguous() -> None:
    aads = {
        _format.aad('a","b', "u", {}),
        _format.aad("a", '","bu', {}),
        _format.aad("a", "u", {"x": "y"}),
        _format.aad("a", "u", {"x": "y", "": ""}),
        _format.aad("a", "u", {"x,": "y"}),
    }
    assert len(aads) == 5
    assert _format.aad("a", "u", {"y": "1", "x": "2"}) == _format.aad(
        "a", "u", {"x": "2", "y": "1"}
    )


def test_blob_round_trip_and_refusals() -> None:
    sealed = _format.Sealed(uid="42", nonce=b"n" * 12, tag=b"t" * 16, ciphertext=b"c" * 64)
    blob = sealed.to_bytes()

    assert _format.parse(blob) == sealed
    assert SECRET.hex() not in repr(sealed) and "ccc" not in repr(sealed)
    header = len(_format.FORMAT_HEADER)
    for bad in (blob[:header] + b"\x00\x00" + blob[header + 2 :], blob[: header + 2 + 2 + 28]):
        with pytest.raises(DecryptionFailed):
            _format.parse(bad)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "ciphertext_input", "expected", "code"),
    [
        (1, False, KeyUnavailable, Reason.EXTERNAL_KEY_DELETED),
        (12, False, KeyUnavailable, Reason.EXTERNAL_KEY_ACCESS_DENIED),
        (3, False, KeyUnavailable, Reason.EXTERNAL_KEY_ACCESS_DENIED),
        (256, True, DecryptionFailed, Reason.DECRYPTION_FAILED),
        (10, True, DecryptionFailed, Reason.DECRYPTION_FAILED),
        (256, False, ServiceUnavailable, Reason.KMS_UNAVAILABLE),
        (7, False, InvalidInput, Reason.INVALID_INPUT),
        (5, False, KeyUnavailable, Reason.EXTERNAL_KEY_UNAVAILABLE),
        (58, False, ServiceUnavailable, Reason.KMS_THROTTLED),
        (42, False, ServiceUnavailable, Reason.KMS_UNAVAILABLE),
        (None, False, KeyUnavailable, Reason.EXTERNAL_KEY_UNAVAILABLE),
    ],
)
def test_result_reasons_map_to_the_error_tree(
    reason: int | None, ciphertext_input: bool, expected: type, code: Reason
) -> None:
    err = translate_kmip_failure(
        KmipOperationFailed(Operation.DECRYPT, reason), ciphertext_input=ciphertext_input
    )
    assert type(err) is expected and err.reason is code


@pytest.mark.parametrize(
    ("exc", "expected", "code"),
    [
        (ConnectionRefusedError(), ServiceUnavailable, Reason.KMS_UNAVAILABLE),
        (TimeoutError(), ServiceUnavailable, Reason.KMS_UNAVAILABLE),
        (socket.gaierror(), ServiceUnavailable, Reason.KMS_UNAVAILABLE),
        (ssl.SSLEOFError(), ServiceUnavailable, Reason.KMS_UNAVAILABLE),
        (ssl.SSLCertVerificationError(), KeyUnavailable, Reason.EXTERNAL_KEY_UNAVAILABLE),
        (ssl.SSLError(), KeyUnavailable, Reason.EXTERNAL_KEY_ACCESS_DENIED),
        (TtlvError(), ServiceUnavailable, Reason.KMS_UNAVAILABLE),
    ],
)
def test_transport_errors_map_to_the_error_tree(
    exc: BaseException, expected: type, code: Reason
) -> None:
    err = translate_transport_error(exc)
    assert type(err) is expected and err is not None and err.reason is code
    assert translate_transport_error(RuntimeError()) is None


# --- settings -------------------------------------------------------------------------------


@pytest.fixture
def no_ekms_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [name for name in os.environ if name.startswith("EKMS_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_kmip_settings_come_from_the_environment(no_ekms_env: pytest.MonkeyPatch) -> None:
    assert KmipSettings.from_settings(Settings()) is None
    no_ekms_env.setenv("EKMS_KMIP_HOST", "kmip.example.internal")
    with pytest.raises(ValueError, match="EKMS_KMIP_CERT_FILE"):
        KmipSettings.from_settings(Settings())

    no_ekms_env.setenv("EKMS_KMIP_CERT_FILE", "/etc/ekms/kmip.crt")
    no_ekms_env.setenv("EKMS_KMIP_KEY_FILE", "/etc/ekms/kmip.key")
    no_ekms_env.setenv("EKMS_KMIP_CA_FILE", "/etc/ekms/kmip-ca.crt")
    no_ekms_env.setenv("EKMS_KMIP_PORT", "15696")
    settings = KmipSettings.from_settings(Settings())

    assert settings == KmipSettings(
        host="kmip.example.internal",
        port=15696,
        cert_file=Path("/etc/ekms/kmip.crt"),
        key_file=Path("/etc/ekms/kmip.key"),
        ca_file=Path("/etc/ekms/kmip-ca.crt"),
    )
