"""Client-side stream and file encryption over data keys (docs/envelope-format.md).

    from ekms_client import EkmsClient, Target
    from ekms_client.files import decrypt_file, encrypt_file

    with EkmsClient("ekms.internal:50051", token=token) as ekms:
        docs = Target.for_module("global.documents")
        encrypt_file(ekms, docs, "report.pdf", "report.pdf.ekms", context=b"tenant-7")
        decrypt_file(ekms, docs, "report.pdf.ekms", "report.pdf", context=b"tenant-7")

One data key per stream: ekms seals it, the bytes never leave this process. Needs the
``ekms-client[files]`` extra (``cryptography``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

from ekms_client._types import DataKey, Target
from ekms_client.envelope import (
    DEFAULT_SEGMENT_SIZE,
    EnvelopeError,
    Source,
    open_segments,
    read_header,
    seal,
    write_all_or_nothing,
)

__all__ = [
    "DataKeys",
    "EnvelopeError",
    "decrypt_file",
    "decrypt_stream",
    "encrypt_file",
    "encrypt_stream",
]


class DataKeys(Protocol):
    """What these helpers need of a client: ``EkmsClient`` (blocking) is one."""

    def generate_data_key(self, target: Target, *, context: bytes = b"") -> DataKey: ...

    def decrypt_data_key(
        self, target: Target, sealed_key: bytes, *, context: bytes = b""
    ) -> DataKey: ...


def encrypt_stream(
    client: DataKeys,
    target: Target,
    source: Source,
    *,
    context: bytes = b"",
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> Iterator[bytes]:
    """The envelope of ``source`` (a binary file object or an iterable of bytes), chunk by
    chunk, under a fresh data key from ``target`` (needs ``encrypt``)."""
    key = client.generate_data_key(target, context=context)
    yield from seal(key.plaintext_key, key.sealed_key, source, segment_size=segment_size)


def decrypt_stream(
    client: DataKeys, target: Target, source: Source, *, context: bytes = b""
) -> Iterator[bytes]:
    """The plaintext of an envelope, segment by segment (needs ``decrypt``). Each segment is
    verified before it is yielded, but a cut stream is only seen at its end: treat the output
    as unverified until the iterator finishes (``decrypt_file`` does)."""
    header, reader = read_header(source)
    key = client.decrypt_data_key(target, header.sealed_key, context=context)
    yield from open_segments(key.plaintext_key, header, reader)


def encrypt_file(
    client: DataKeys,
    target: Target,
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    context: bytes = b"",
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> None:
    """Writes the envelope of file ``source`` to ``destination`` (all or nothing)."""
    with open(source, "rb") as reader:
        chunks = encrypt_stream(client, target, reader, context=context, segment_size=segment_size)
        write_all_or_nothing(chunks, destination)


def decrypt_file(
    client: DataKeys,
    target: Target,
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    context: bytes = b"",
) -> None:
    """Writes the plaintext of envelope ``source`` to ``destination`` only once the whole
    stream verified; on any failure ``destination`` is left as it was."""
    with open(source, "rb") as reader:
        write_all_or_nothing(decrypt_stream(client, target, reader, context=context), destination)
