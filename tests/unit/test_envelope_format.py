"""The envelope stream format (docs/envelope-format.md) of ekms_client.envelope.

The known-answer vectors of docs/envelope-vectors.json are recomputed here from the written spec
with ``cryptography``'s AESGCM directly, then matched by ``seal`` and opened by ``unseal``. A
property test cuts, reorders, duplicates and splices segments (and whole streams): each case
fails with the one opaque ``EnvelopeError``, and nothing of a bad stream is accepted as whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from ekms_client.envelope import TAG_SIZE, EnvelopeError, read_header, seal, unseal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

VECTORS = json.loads((Path(__file__).parents[2] / "docs" / "envelope-vectors.json").read_text())
SEGMENT = 1024
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SEALED = b"\x01sealed-data-key"
EXAMPLES = int(os.environ.get("EKMS_PROPERTY_EXAMPLES", "200"))


def _plaintext(vector: dict[str, object]) -> bytes:
    return {
        "three segments": bytes(i % 251 for i in range(2500)),
        "empty": b"",
        "one full segment": b"\x5a" * 1024,
    }[str(vector["name"])]


def _by_spec(key: bytes, prefix: bytes, sealed: bytes, size: int, plaintext: bytes) -> bytes:
    """The spec, step by step: header, then segment n sealed with nonce prefix||n||final and
    the header as associated data; the last segment alone has the flag 1."""
    header = (
        b"EKSE\x01" + size.to_bytes(4, "big") + prefix + len(sealed).to_bytes(2, "big") + sealed
    )
    chunks = [plaintext[i : i + size] for i in range(0, len(plaintext), size)] or [b""]
    out = header
    for n, chunk in enumerate(chunks):
        flag = b"\x01" if n == len(chunks) - 1 else b"\x00"
        out += AESGCM(key).encrypt(prefix + n.to_bytes(4, "big") + flag, chunk, header)
    return out


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_known_answer_vectors(vector: dict[str, object]) -> None:
    key, prefix = bytes.fromhex(str(vector["data_key"])), bytes.fromhex(str(vector["nonce_prefix"]))
    sealed, plaintext = bytes.fromhex(str(vector["sealed_key"])), _plaintext(vector)
    assert hashlib.sha256(plaintext).hexdigest() == vector["plaintext_sha256"]
    expected = _by_spec(key, prefix, sealed, int(str(vector["segment_size"])), plaintext)
    assert hashlib.sha256(expected).hexdigest() == vector["envelope_sha256"]
    assert expected.startswith(bytes.fromhex(str(vector["header"])))
    produced = b"".join(
        seal(key, sealed, io.BytesIO(plaintext), segment_size=1024, nonce_prefix=prefix)
    )
    assert produced == expected
    assert b"".join(unseal(key, io.BytesIO(produced))) == plaintext
    segments = vector["segments"]
    assert isinstance(segments, list)
    offset = len(bytes.fromhex(str(vector["header"])))
    for segment in segments:
        body = produced[offset : offset + segment["length"]]
        assert hashlib.sha256(body).hexdigest() == segment["sha256"]
        assert body[-TAG_SIZE:].hex() == segment["tag"]
        offset += segment["length"]
    assert offset == len(produced)


@pytest.mark.parametrize("length", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 5000])
@pytest.mark.parametrize("chunking", [1, 7, SEGMENT, 4096])
def test_round_trip_from_iterables_of_any_chunk_size(length: int, chunking: int) -> None:
    plaintext = os.urandom(length)
    source = (plaintext[i : i + chunking] for i in range(0, length, chunking))
    envelope = list(seal(KEY, SEALED, source, segment_size=SEGMENT))
    pieces = [
        b"".join(envelope)[i : i + chunking] for i in range(0, len(b"".join(envelope)), chunking)
    ]
    assert b"".join(unseal(KEY, iter(pieces))) == plaintext
    header, _ = read_header(io.BytesIO(b"".join(envelope)))
    assert (header.sealed_key, header.segment_size) == (SEALED, SEGMENT)


def test_each_stream_has_its_own_prefix() -> None:
    one = b"".join(seal(KEY, SEALED, [b"same"], segment_size=SEGMENT))
    two = b"".join(seal(KEY, SEALED, [b"same"], segment_size=SEGMENT))
    assert one != two


def _split(envelope: bytes) -> tuple[bytes, list[bytes]]:
    header, reader = read_header(io.BytesIO(envelope))
    rest = envelope[len(header.raw) :]
    size = SEGMENT + TAG_SIZE
    return header.raw, [rest[i : i + size] for i in range(0, len(rest), size)]


def _stream(plaintext: bytes, key: bytes = KEY) -> tuple[bytes, list[bytes]]:
    return _split(b"".join(seal(key, SEALED, [plaintext], segment_size=SEGMENT)))


def _mutations(
    header: bytes, segments: list[bytes], other: tuple[bytes, list[bytes]]
) -> st.SearchStrategy[bytes]:
    n = len(segments)
    whole = header + b"".join(segments)
    other_header, other_segments = other
    cases: list[st.SearchStrategy[bytes]] = [
        # truncation anywhere, at a segment boundary included (not the whole stream)
        st.integers(0, len(whole) - 1).map(lambda cut: whole[:cut]),
        st.integers(0, n - 1).map(lambda k: header + b"".join(segments[:k])),
        # duplication of a segment, in place or at the end
        st.integers(0, n - 1).map(lambda k: header + b"".join(segments[: k + 1] + segments[k:])),
        st.integers(0, n - 1).map(lambda k: whole + segments[k]),
        # splicing: the other stream's header on these segments, or its segments in this one
        st.just(other_header + b"".join(segments)),
        st.integers(0, min(n, len(other_segments)) - 1).map(
            lambda k: header + b"".join(segments[:k] + [other_segments[k]] + segments[k + 1 :])
        ),
        # bytes appended after the final segment
        st.binary(min_size=1, max_size=40).map(lambda tail: whole + tail),
    ]
    if n > 1:
        cases.append(
            st.permutations(list(range(n)))
            .filter(lambda order: order != list(range(n)))
            .map(lambda order: header + b"".join(segments[i] for i in order))
        )
        cases.append(
            st.integers(0, n - 2).map(lambda k: header + b"".join(segments[:k] + segments[k + 1 :]))
        )
    return st.one_of(cases)


@st.composite
def broken_envelopes(draw: st.DrawFn) -> bytes:
    plaintext = draw(st.binary(min_size=0, max_size=5 * SEGMENT))
    header, segments = _stream(plaintext)
    other_key = draw(st.sampled_from([KEY, OTHER_KEY]))  # same key, or a whole other stream's
    other = _stream(draw(st.binary(min_size=len(plaintext), max_size=5 * SEGMENT)), other_key)
    return draw(_mutations(header, segments, other))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_envelopes())
def test_every_cut_reorder_duplicate_or_splice_fails_with_the_one_error(broken: bytes) -> None:
    with pytest.raises(EnvelopeError) as raised:
        b"".join(unseal(KEY, io.BytesIO(broken)))
    assert str(raised.value) == "the envelope does not verify"


def test_wrong_key_and_garbage_are_the_same_error() -> None:
    envelope = b"".join(seal(KEY, SEALED, [b"x" * 3000], segment_size=SEGMENT))
    for key, data in [
        (OTHER_KEY, envelope),
        (KEY, b""),
        (KEY, b"not an envelope at all"),
        (b"short", envelope),
    ]:
        with pytest.raises(EnvelopeError):
            b"".join(unseal(key, io.BytesIO(data)))


def test_sealing_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        list(seal(b"short", SEALED, [b""]))
    with pytest.raises(ValueError, match="segment_size"):
        list(seal(KEY, SEALED, [b""], segment_size=10))
