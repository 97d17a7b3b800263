"""Issue 10, findings 6 and 9: names are matched whole (a trailing newline is not a name), error
messages never carry raw control characters, and only the canonical text form of a ciphertext
decodes (the unused low bits of its last base64url character must be zero).
"""

from __future__ import annotations

import base64
import os
import uuid

import pytest

from app.application.targets import Target
from app.domain import ciphertext as ct
from app.domain.errors import DecryptionFailed, InvalidInput, NotFound, escape_controls
from app.domain.keys import DEK_SIZE, DataKey
from app.domain.values import Algorithm, FieldRef, validate_module_name

URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
CONTROLS = [chr(c) for c in range(0x20)] + ["\x7f", "\x85", "\u2028", "\u2029"]


def has_control(text: str) -> bool:
    return not text.isprintable()


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\x00", " ", "\t"])
def test_a_module_name_with_a_trailing_character_is_invalid(suffix: str) -> None:
    assert validate_module_name("global.payroll") == "global.payroll"
    with pytest.raises(InvalidInput) as info:
        validate_module_name("global.payroll" + suffix)
    assert info.value.field == "name"
    assert not has_control(info.value.message)


@pytest.mark.parametrize("part", ["table", "column"])
def test_a_field_identifier_with_a_trailing_newline_is_invalid(part: str) -> None:
    names = {"table": "employees", "column": "salary", part: f"{part}\n"}
    with pytest.raises(InvalidInput) as info:
        FieldRef(names["table"], names["column"])
    assert info.value.field == part


def test_a_target_naming_a_module_with_a_newline_is_invalid_not_unknown() -> None:
    with pytest.raises(InvalidInput):
        Target.of(module="global.payroll\n")
    with pytest.raises(InvalidInput):
        Target.of(table="employees\n", column="salary")


# --- messages -----------------------------------------------------------------------------------


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_error_messages_escape_control_characters(control: str) -> None:
    name = f"global.pay{control}roll"
    for error in (
        NotFound(f"module {name} does not exist"),
        InvalidInput(f"unknown {name}", field="name"),
    ):
        assert not has_control(error.message) and not has_control(str(error))
        assert repr(control)[1:-1] in error.message  # escaped, still readable


def test_escape_controls_leaves_printable_text_alone() -> None:
    assert escape_controls("module 'global.payroll' does not exist") == (
        "module 'global.payroll' does not exist"
    )
    assert escape_controls("a\nb\x00c\x1b[31m") == "a\\nb\\x00c\\x1b[31m"


# --- canonical text ciphertexts -------------------------------------------------------------------


def sealed(
    plaintext_size: int, algorithm: Algorithm = Algorithm.AES_256_SIV
) -> tuple[DataKey, bytes]:
    key = DataKey(algorithm, uuid.uuid4(), 1, os.urandom(DEK_SIZE[algorithm]))
    nonce = os.urandom(12) if algorithm is Algorithm.AES_256_GCM else b""
    return key, key.encrypt(os.urandom(plaintext_size), b"module:global.payroll", b"", nonce)


def low_bit_variants(text: str, blob_size: int) -> list[str]:
    """The texts a lenient base64 decoder reads as the same bytes: the last character with some
    of its unused low bits set (4 unused bits when ``size % 3 == 1``, 2 when it is 2)."""
    unused = {0: 0, 1: 4, 2: 2}[blob_size % 3]
    index = URLSAFE.index(text[-1])
    return [text[:-1] + URLSAFE[index | bits] for bits in range(1, 1 << unused)]


@pytest.mark.parametrize("algorithm", list(Algorithm))
@pytest.mark.parametrize("remainder", [1, 2], ids=["4-unused-bits", "2-unused-bits"])
def test_setting_the_unused_low_bits_of_a_real_ciphertext_is_decryption_failed(
    algorithm: Algorithm, remainder: int
) -> None:
    overhead = len(sealed(0, algorithm)[1])
    _, blob = sealed((remainder - overhead) % 3, algorithm)
    assert len(blob) % 3 == remainder
    text = ct.to_text(blob)
    variants = low_bit_variants(text, len(blob))
    assert len(variants) == (1 << (6 - 2 * remainder)) - 1
    for variant in variants:
        payload = variant[len(ct.TEXT_PREFIX) :]
        lenient = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        assert lenient == blob  # the attack: a second text for the very same ciphertext
        with pytest.raises(DecryptionFailed) as info:
            ct.from_text(variant)
        assert str(info.value) == "ciphertext could not be decrypted"  # the one opaque error


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + "=",
        lambda t: t + "==",
        lambda t: t + "\n",
        lambda t: t[:12] + "\n" + t[12:],
        lambda t: t[:12] + " " + t[12:],
        lambda t: t[:12] + "!" + t[12:],
    ],
    ids=["padding", "double-padding", "trailing-newline", "inner-newline", "space", "junk"],
)
def test_other_non_canonical_spellings_are_decryption_failed(mangle: object) -> None:
    _, blob = sealed(5)
    text = ct.to_text(blob)
    assert ct.from_text(text) == blob
    with pytest.raises(DecryptionFailed):
        ct.from_text(mangle(text))  # type: ignore[operator]
