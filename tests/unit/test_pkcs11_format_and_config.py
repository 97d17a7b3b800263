"""The PKCS#11 provider's pure parts: the wrapped format, the context encoding, the PIN."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from app.domain.errors import DecryptionFailed, InvalidInput
from app.infra.kms.pkcs11 import Pkcs11Config, resolve_pin
from app.infra.kms.pkcs11.blob import IV_SIZE, TAG_SIZE, WrappedBlob, aad, encode_context, parse

PIN = "pin-5f0c1e-secret"


def test_a_blob_round_trips_through_its_format() -> None:
    blob = WrappedBlob(key_id=b"\x00\x07", iv=b"\x11" * IV_SIZE, sealed=b"\x22" * (32 + TAG_SIZE))

    encoded = blob.encode()

    assert encoded[:4] == b"\x01\x02\x00\x07"
    assert parse(encoded) == blob
    assert "22" not in repr(blob)  # the sealed bytes stay out of the repr


@pytest.mark.parametrize(
    "wrapped",
    [
        b"",
        b"\x01",
        b"\x02\x00" + bytes(IV_SIZE + TAG_SIZE + 1),  # an unknown version
        b"\x01\x00" + bytes(IV_SIZE + TAG_SIZE),  # no ciphertext
        b"\x01\xff" + bytes(IV_SIZE + TAG_SIZE + 1),  # an id longer than the blob
    ],
)
def test_anything_but_a_v1_blob_is_decryption_failed(wrapped: bytes) -> None:
    with pytest.raises(DecryptionFailed):
        parse(wrapped)


def test_the_context_encoding_ignores_order_and_never_confuses_two_contexts() -> None:
    assert encode_context({"a": "1", "b": "2"}) == encode_context({"b": "2", "a": "1"})
    distinct = [{}, {"": ""}, {"ab": "c"}, {"a": "bc"}, {"a": "b", "c": ""}, {"a": "b\x00c"}]
    assert len({encode_context(c) for c in distinct}) == len(distinct)


def test_the_aad_binds_the_header_and_the_label() -> None:
    context = {"ekms:kek": "kek-1"}
    one = aad(b"\x01\x01\x01", "kek", context)

    assert one != aad(b"\x01\x01\x02", "kek", context)
    assert one != aad(b"\x01\x01\x01", "kek2", context)
    assert one.startswith(b"ekms-pkcs11\x01\x01\x01")


@pytest.mark.parametrize("context", [{"k": 1}, {1: "v"}, {"k": "\ud800"}])
def test_a_context_that_is_not_text_is_refused(context: dict[object, object]) -> None:
    with pytest.raises(InvalidInput):
        encode_context(context)  # type: ignore[arg-type]


def test_the_config_never_shows_its_pin() -> None:
    config = Pkcs11Config(token_label="ekms", pin=SecretStr(PIN))

    assert PIN not in repr(config) and PIN not in str(config)
    assert config.library == "/usr/lib/softhsm/libsofthsm2.so"


@pytest.mark.parametrize(
    "fields",
    [
        {"token_label": "", "pin": SecretStr(PIN)},
        {"token_label": "t", "pin": SecretStr("")},
        {"token_label": "t", "pin": SecretStr(PIN), "library": ""},
        {"token_label": "t", "pin": SecretStr(PIN), "call_timeout": 0},
    ],
)
def test_an_incomplete_config_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as refused:
        Pkcs11Config(**fields)  # type: ignore[arg-type]
    assert PIN not in str(refused.value)


def test_the_pin_comes_from_the_setting_or_the_first_line_of_a_private_file(
    tmp_path: Path,
) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\nignored\n")
    pin_file.chmod(0o600)

    assert resolve_pin(SecretStr(PIN), None).get_secret_value() == PIN
    assert resolve_pin(None, pin_file).get_secret_value() == PIN


def test_a_pin_file_refusal_never_quotes_the_file(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    cases: list[tuple[bytes, int]] = [
        (PIN.encode(), 0o640),  # group-readable
        (PIN.encode() + b"\xff", 0o600),  # not UTF-8
        (b"\n" + PIN.encode(), 0o600),  # an empty first line
        (b"", 0o600),
    ]
    for content, mode in cases:
        pin_file.write_bytes(content)
        pin_file.chmod(mode)
        with pytest.raises(InvalidInput) as refused:
            resolve_pin(None, pin_file)
        assert PIN not in str(refused.value) and refused.value.__cause__ is None
    with pytest.raises(InvalidInput):
        resolve_pin(None, tmp_path / "missing")


def test_exactly_one_pin_source_is_accepted(tmp_path: Path) -> None:
    for pin, pin_file in [(None, None), (SecretStr(PIN), tmp_path / "pin")]:
        with pytest.raises(InvalidInput, match="exactly one"):
            resolve_pin(pin, pin_file)
