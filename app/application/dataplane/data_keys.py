"""Envelope data keys: what ``CryptoService.generate_data_key`` and ``decrypt_data_key`` give.

A data key is fresh randomness from the ``RandomSource`` port, never the module's DEK. Its
sealed form is an ordinary ciphertext of format v1 (docs/ciphertext-format.md) of the key
bytes, made by the encrypt path: it names its module and key version, is bound to the target
and the caller's context, and ``Rewrap`` moves it like any other ciphertext. The plaintext key
is ``repr=False`` everywhere it is held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from app.domain.errors import DecryptionFailed


class DataKeySpec(Enum):
    """The size of a data key, in bytes."""

    AES_256 = 32
    AES_128 = 16


_SIZES = frozenset(spec.value for spec in DataKeySpec)


@dataclass(frozen=True, slots=True)
class SealedDataKey:
    """A data key's sealed form (store it), and the key version that sealed it."""

    sealed_key: bytes
    key_version: int


@dataclass(frozen=True, slots=True)
class DataKeyPair:
    """A generated data key: the plaintext key (use it, never store it) and its sealed form."""

    sealed: SealedDataKey
    plaintext_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class OpenedDataKey:
    """An opened data key and the key version that had sealed it."""

    plaintext_key: bytes = field(repr=False)
    key_version: int


def check_opened(plaintext: bytes) -> bytes:
    """The opened bytes when they have a data key's size; else the one opaque error (the
    ciphertext held something else, sealed for the same target and context)."""
    if len(plaintext) not in _SIZES:
        raise DecryptionFailed()
    return plaintext
