"""Property tests: the ciphertext parser and the data-key decrypt against hostile input.

Whatever bytes or text arrive, the only outcome besides a correct decrypt is the one opaque
``DecryptionFailed``: never another exception, never a plaintext for a ciphertext that was
changed. Valid ciphertexts (both algorithms, any plaintext, binding and context) are truncated,
extended, bit-flipped and replayed under another binding or context.

Example counts are modest for CI; ``EKMS_PROPERTY_EXAMPLES`` raises them (e.g. 20000).
"""

from __future__ import annotations

import os
import uuid

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.domain import ciphertext as ct
from app.domain.errors import DecryptionFailed
from app.domain.keys import DEK_SIZE, DataKey
from app.domain.values import Algorithm

EXAMPLES = int(os.environ.get("EKMS_PROPERTY_EXAMPLES", "300"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a shared CI machine: time per example is not what is tested
    suppress_health_check=[HealthCheck.too_slow],
)

algorithms = st.sampled_from(list(Algorithm))
bindings = st.one_of(
    st.from_regex(r"field:[a-z_]{1,8}\.[a-z_]{1,8}", fullmatch=True),
    st.from_regex(r"module:[a-z]{1,6}\.[a-z]{1,6}", fullmatch=True),
).map(str.encode)
contexts = st.binary(max_size=64)
plaintexts = st.binary(max_size=256)


@st.composite
def sealed(draw: st.DrawFn) -> tuple[DataKey, bytes, bytes, bytes, bytes]:
    """``(key, blob, binding, context, plaintext)``: a genuine ciphertext and what opens it."""
    algorithm = draw(algorithms)
    key = DataKey(
        algorithm,
        uuid.UUID(bytes=draw(st.binary(min_size=16, max_size=16))),
        draw(st.integers(min_value=1, max_value=2**32 - 1)),
        draw(st.binary(min_size=DEK_SIZE[algorithm], max_size=DEK_SIZE[algorithm])),
    )
    binding, context, plaintext = draw(bindings), draw(contexts), draw(plaintexts)
    nonce = draw(st.binary(min_size=12, max_size=12)) if algorithm is Algorithm.AES_256_GCM else b""
    return key, key.encrypt(plaintext, binding, context, nonce), binding, context, plaintext


def open_blob(key: DataKey, blob: bytes, binding: bytes, context: bytes) -> bytes:
    return key.decrypt(ct.parse(blob), binding, context)


def refused(call: object, *args: object) -> bool:
    """True if ``call(*args)`` raised DecryptionFailed; any other exception propagates."""
    try:
        call(*args)  # type: ignore[operator]
    except DecryptionFailed as err:
        assert str(err) == "ciphertext could not be decrypted"  # opaque, says nothing more
        return True
    return False


# --- the parser over anything ----------------------------------------------------------------


@PROFILE
@given(st.binary(max_size=200))
@example(b"")
@example(bytes(22))
@example(b"\x01\x01" + bytes(20) + bytes(28))  # key version 0
@example(b"\x01\x03" + bytes(16) + b"\x00\x00\x00\x01" + bytes(28))  # unknown algorithm
def test_parse_accepts_or_refuses_opaquely(blob: bytes) -> None:
    try:
        parsed = ct.parse(blob)
    except DecryptionFailed:
        return
    assert parsed.header_bytes == blob[: ct.HEADER_SIZE] == parsed.header.pack()
    assert parsed.body == blob[ct.HEADER_SIZE :]
    assert parsed.header.key_version >= 1


@PROFILE
@given(st.one_of(st.text(max_size=200), st.text(max_size=200).map(lambda s: ct.TEXT_PREFIX + s)))
@example("ekms:v1:")
@example("ekms:v1:A")
@example("ekms:v1:AQ==")
@example("ekms:v1:+/+/")
@example("ekms:v1:\u00e9\u00e9")
@example("EKMS:V1:AAAA")
def test_from_text_decodes_or_refuses_opaquely(text: str) -> None:
    try:
        blob = ct.from_text(text)
    except DecryptionFailed:
        return
    assert isinstance(blob, bytes)
    assert text.startswith(ct.TEXT_PREFIX)


@PROFILE
@given(st.binary(max_size=300))
def test_text_form_round_trips_any_bytes(blob: bytes) -> None:
    text = ct.to_text(blob)
    assert text.isascii() and "=" not in text
    assert ct.from_text(text) == blob


@PROFILE
@given(algorithms, st.binary(min_size=ct.HEADER_SIZE, max_size=120), bindings, contexts)
def test_decrypt_of_arbitrary_parsed_input_is_refused(
    algorithm: Algorithm, blob: bytes, binding: bytes, context: bytes
) -> None:
    """A key never opens bytes it did not seal, even with its own header stamped on them."""
    key = DataKey(algorithm, uuid.uuid4(), 1, os.urandom(DEK_SIZE[algorithm]))
    forged = key.header_bytes + blob[ct.HEADER_SIZE :]
    for candidate in (blob, forged):
        try:
            parsed = ct.parse(candidate)
        except DecryptionFailed:
            continue
        assert refused(key.decrypt, parsed, binding, context)


# --- genuine ciphertexts, damaged -----------------------------------------------------------


@PROFILE
@given(sealed())
def test_a_genuine_ciphertext_opens_in_binary_and_text_form(
    case: tuple[DataKey, bytes, bytes, bytes, bytes],
) -> None:
    key, blob, binding, context, plaintext = case
    assert open_blob(key, blob, binding, context) == plaintext
    assert open_blob(key, ct.from_text(ct.to_text(blob)), binding, context) == plaintext


@PROFILE
@given(sealed(), st.data())
def test_truncations_are_refused(
    case: tuple[DataKey, bytes, bytes, bytes, bytes], data: st.DataObject
) -> None:
    key, blob, binding, context, _ = case
    cut = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="keep")
    assert refused(open_blob, key, blob[:cut], binding, context)


@PROFILE
@given(sealed(), st.binary(min_size=1, max_size=32))
def test_extensions_are_refused(
    case: tuple[DataKey, bytes, bytes, bytes, bytes], extra: bytes
) -> None:
    key, blob, binding, context, _ = case
    assert refused(open_blob, key, blob + extra, binding, context)


@PROFILE
@given(sealed(), st.data())
def test_bit_flips_anywhere_are_refused(
    case: tuple[DataKey, bytes, bytes, bytes, bytes], data: st.DataObject
) -> None:
    key, blob, binding, context, _ = case
    positions = st.integers(min_value=0, max_value=len(blob) * 8 - 1)
    flips = data.draw(st.sets(positions, min_size=1, max_size=3), label="bits")
    damaged = bytearray(blob)
    for bit in flips:
        damaged[bit // 8] ^= 1 << (bit % 8)
    assert refused(open_blob, key, bytes(damaged), binding, context)


@PROFILE
@given(sealed(), st.data())
def test_text_form_damage_never_yields_another_plaintext(
    case: tuple[DataKey, bytes, bytes, bytes, bytes], data: st.DataObject
) -> None:
    """Truncate or change one character of the text form: refused, or it is the canonical text
    of other bytes (a truncation) that do not open. The unused low bits of the last character
    are no longer a way to get the same ciphertext under another text (issue 10)."""
    key, blob, binding, context, plaintext = case
    text = ct.to_text(blob)
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1), label="at")
    if data.draw(st.booleans(), label="truncate"):
        damaged = text[:position]
    else:
        replacement = data.draw(st.characters(codec="utf-8"), label="char")
        damaged = text[:position] + replacement + text[position + 1 :]
    try:
        decoded = ct.from_text(damaged)
    except DecryptionFailed:
        return
    assert ct.to_text(decoded) == damaged
    if decoded == blob:
        assert damaged == text
        assert open_blob(key, decoded, binding, context) == plaintext
    else:
        assert refused(open_blob, key, decoded, binding, context)


URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@PROFILE
@given(st.binary(min_size=1, max_size=120), st.integers(min_value=1, max_value=15))
def test_the_text_form_is_canonical(blob: bytes, low_bits: int) -> None:
    """Only ``to_text(blob)`` decodes to ``blob``: setting any of the last character's unused
    low bits (which a lenient base64 decoder ignores) is refused."""
    text = ct.to_text(blob)
    unused = {1: 4, 2: 2, 0: 0}[len(blob) % 3]
    if unused == 0 or low_bits >= 1 << unused:
        return
    index = URLSAFE.index(text[-1])
    assert index & ((1 << unused) - 1) == 0  # the encoder leaves them zero
    variant = text[:-1] + URLSAFE[index | low_bits]
    assert variant != text
    assert refused(ct.from_text, variant)


@PROFILE
@given(
    st.one_of(st.text(max_size=120), st.binary(max_size=90).map(ct.to_text)), st.text(max_size=3)
)
def test_whatever_text_decodes_is_the_canonical_text_of_its_bytes(base: str, suffix: str) -> None:
    text = base + suffix
    try:
        blob = ct.from_text(text)
    except DecryptionFailed:
        return
    assert ct.to_text(blob) == text


@PROFILE
@given(sealed(), bindings, contexts)
def test_replay_under_another_binding_or_context_is_refused(
    case: tuple[DataKey, bytes, bytes, bytes, bytes], other_binding: bytes, other_context: bytes
) -> None:
    key, blob, binding, context, _ = case
    if other_binding != binding:
        assert refused(open_blob, key, blob, other_binding, context)
    if other_context != context:
        assert refused(open_blob, key, blob, binding, other_context)


@PROFILE
@given(sealed())
def test_another_key_or_version_never_opens_it(
    case: tuple[DataKey, bytes, bytes, bytes, bytes],
) -> None:
    key, blob, binding, context, _ = case
    parsed = ct.parse(blob)
    stranger = DataKey(
        key.algorithm, key.module_id, key.version, os.urandom(DEK_SIZE[key.algorithm])
    )
    assert refused(stranger.decrypt, parsed, binding, context)
    other_alg = next(a for a in Algorithm if a is not key.algorithm)
    cross = DataKey(other_alg, key.module_id, key.version, os.urandom(DEK_SIZE[other_alg]))
    assert refused(cross.decrypt, parsed, binding, context)
