"""What a data-plane call carries in and gets back, one value at a time."""

from __future__ import annotations

from dataclasses import dataclass

from app.application.targets import Target
from app.domain.errors import EkmsError


@dataclass(frozen=True, slots=True)
class Item:
    """One value to encrypt (plaintext) or decrypt/rewrap (ciphertext, binary form)."""

    target: Target
    data: bytes
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ItemResult:
    """Exactly one of ``data`` or ``error``."""

    data: bytes | None = None
    error: EkmsError | None = None
    key_version: int | None = None


def require_ok(result: ItemResult) -> ItemResult:
    """For single-item callers: raise the item's error, or return it."""
    if result.error is not None:
        raise result.error
    return result


def data_of(result: ItemResult) -> bytes:
    """The data of a result that succeeded; a success without data is a bug, never answered."""
    if result.data is None:
        raise RuntimeError("the data plane returned no data and no error")
    return result.data
