"""The envelope stream format (docs/envelope-format.md): a header carrying the sealed data key,
then AES-256-GCM segments in the STREAM construction (nonce = random prefix, segment counter,
final flag; the header is each segment's associated data).

Pure: it needs ``cryptography`` (the ``ekms-client[files]`` extra) and nothing of gRPC, so the
CLI can use it over REST. Reading never holds more than one segment (plus one byte) in memory.
Every failure to open a stream is the one ``EnvelopeError``, whatever was wrong.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ImportError(
        "ekms_client.envelope needs cryptography: pip install 'ekms-client[files]'"
    ) from exc

MAGIC = b"EKSE"
VERSION = 1
PREFIX_SIZE = 7
TAG_SIZE = 16
KEY_SIZE = 32
DEFAULT_SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 1 << 10
MAX_SEGMENT_SIZE = 1 << 24
MAX_SEGMENTS = 1 << 32
MAX_SEALED_KEY = 0xFFFF
_FIXED = struct.Struct(">4sBI7sH")  # magic, version, segment size, nonce prefix, sealed key length


class EnvelopeError(Exception):
    """The stream is not an intact envelope for this key (truncated, reordered, duplicated,
    spliced, tampered, or not an envelope at all). Deliberately says no more."""

    def __init__(self) -> None:
        super().__init__("the envelope does not verify")


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


Source = BinaryIO | Readable | Iterable[bytes]
"""A binary file object (``read``) or an iterable of byte chunks of any sizes."""


@dataclass(frozen=True, slots=True)
class Header:
    """A stream's header; ``raw`` (its exact bytes) is every segment's associated data."""

    segment_size: int
    nonce_prefix: bytes
    sealed_key: bytes
    raw: bytes = field(repr=False)

    @classmethod
    def build(cls, sealed_key: bytes, segment_size: int, nonce_prefix: bytes) -> Header:
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment_size must be {MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE}")
        if len(nonce_prefix) != PREFIX_SIZE:
            raise ValueError(f"nonce_prefix must be {PREFIX_SIZE} bytes")
        if not 0 < len(sealed_key) <= MAX_SEALED_KEY:
            raise ValueError("sealed_key must be 1..65535 bytes")
        fixed = _FIXED.pack(MAGIC, VERSION, segment_size, nonce_prefix, len(sealed_key))
        return cls(segment_size, nonce_prefix, sealed_key, fixed + sealed_key)


def segment_nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    """The 12-byte nonce of segment ``counter``: prefix (7) || counter (4, big-endian) || flag."""
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def seal(
    data_key: bytes,
    sealed_key: bytes,
    source: Source,
    *,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    nonce_prefix: bytes | None = None,
) -> Iterator[bytes]:
    """The envelope of ``source`` under ``data_key``: the header, then one ciphertext segment at
    a time. ``nonce_prefix`` is random unless given (known-answer vectors only)."""
    if len(data_key) != KEY_SIZE:
        raise ValueError("data_key must be 32 bytes (AES-256)")
    prefix = os.urandom(PREFIX_SIZE) if nonce_prefix is None else nonce_prefix
    header = Header.build(sealed_key, segment_size, prefix)
    aead = AESGCM(data_key)
    yield header.raw
    reader = _Reader(source)
    chunk = reader.read_exactly(segment_size)
    counter = 0
    while True:
        following = reader.read_exactly(segment_size) if len(chunk) == segment_size else b""
        final = not following
        if counter >= MAX_SEGMENTS:
            raise ValueError("stream too long for this segment size")
        yield aead.encrypt(segment_nonce(prefix, counter, final), chunk, header.raw)
        if final:
            return
        chunk, counter = following, counter + 1


def read_header(source: Source) -> tuple[Header, _Reader]:
    """The header of an envelope and a reader positioned on its first segment."""
    reader = source if isinstance(source, _Reader) else _Reader(source)
    fixed = reader.read_exactly(_FIXED.size)
    if len(fixed) != _FIXED.size:
        raise EnvelopeError()
    magic, version, segment_size, prefix, key_length = _FIXED.unpack(fixed)
    if magic != MAGIC or version != VERSION or key_length == 0:
        raise EnvelopeError()
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise EnvelopeError()
    sealed_key = reader.read_exactly(key_length)
    if len(sealed_key) != key_length:
        raise EnvelopeError()
    return Header(segment_size, prefix, sealed_key, fixed + sealed_key), reader


def open_segments(data_key: bytes, header: Header, reader: _Reader) -> Iterator[bytes]:
    """The plaintext of each segment after ``read_header``, verified one by one; the stream is
    whole only once this iterator ends without ``EnvelopeError`` (a cut is seen at the end)."""
    if len(data_key) != KEY_SIZE:
        raise EnvelopeError()
    aead = AESGCM(data_key)
    size = header.segment_size + TAG_SIZE
    segment = reader.read_exactly(size)
    counter = 0
    while True:
        following = reader.read_exactly(size) if len(segment) == size else b""
        final = not following
        if len(segment) < TAG_SIZE or counter >= MAX_SEGMENTS:
            raise EnvelopeError()
        nonce = segment_nonce(header.nonce_prefix, counter, final)
        try:
            yield aead.decrypt(nonce, segment, header.raw)
        except InvalidTag:
            raise EnvelopeError() from None
        if final:
            return
        segment, counter = following, counter + 1


def unseal(data_key: bytes, source: Source) -> Iterator[bytes]:
    """``read_header`` then ``open_segments``, when the data key is already known."""
    header, reader = read_header(source)
    yield from open_segments(data_key, header, reader)


def write_all_or_nothing(chunks: Iterable[bytes], destination: str | os.PathLike[str]) -> None:
    """Writes ``chunks`` to a temporary file (mode 0600) next to ``destination`` and moves it
    into place once they are all written; on any error ``destination`` is left as it was."""
    target = Path(destination)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


class _Reader:
    """Exact-size reads over a file object or an iterable of chunks (short only at the end)."""

    def __init__(self, source: Source) -> None:
        read = getattr(source, "read", None)
        self._read_some: Callable[[int], bytes] = (
            read if read is not None else self._chunked(source)
        )
        self._buffer = bytearray()

    def read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            part = self._read_some(size - len(self._buffer))
            if not part:
                break
            if not self._buffer and len(part) == size:
                return bytes(part)
            self._buffer += part
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    @staticmethod
    def _chunked(source: Source) -> Callable[[int], bytes]:
        chunks = (bytes(chunk) for chunk in source if chunk)  # type: ignore[union-attr]
        return lambda _size: next(chunks, b"")
