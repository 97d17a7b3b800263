"""The client's values: targets, items, results, the retry policy. Plaintext never in a repr."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ekms_client._errors import EkmsRpcError


@dataclass(frozen=True, slots=True)
class Target:
    """A configured field (table, column) or a crypto module. Build with the class methods."""

    table: str = ""
    column: str = ""
    module: str = ""

    @classmethod
    def for_field(cls, table: str, column: str) -> Target:
        return cls(table=table, column=column)

    @classmethod
    def for_module(cls, name: str) -> Target:
        return cls(module=name)


@dataclass(frozen=True, slots=True)
class EncryptItem:
    """One value of a batch or stream. ``target`` may be omitted in a batch that has one."""

    plaintext: bytes = field(repr=False)
    target: Target | None = None
    context: bytes = b""
    id: str = ""


@dataclass(frozen=True, slots=True)
class DecryptItem:
    ciphertext: bytes
    target: Target | None = None
    context: bytes = b""
    id: str = ""


@dataclass(frozen=True, slots=True)
class Encrypted:
    ciphertext: bytes
    key_version: int


@dataclass(frozen=True, slots=True)
class Decrypted:
    plaintext: bytes = field(repr=False)
    key_version: int = 0


@dataclass(frozen=True, slots=True)
class Rewrapped:
    ciphertext: bytes
    key_version: int
    changed: bool  # False: it already was under the active key version


@dataclass(frozen=True, slots=True)
class DataKey:
    """A data key: ``plaintext_key`` to use now (never stored, never in a repr; ``b""`` when
    asked without it) and ``sealed_key`` (ciphertext format v1) to store with the data."""

    sealed_key: bytes
    key_version: int
    plaintext_key: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class Mac:
    """A blind-index MAC (54 bytes, format v1: it carries its key version) and that version."""

    mac: bytes
    key_version: int


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item's outcome: ``data`` (ciphertext or plaintext) or ``error``."""

    id: str
    data: bytes | None = field(default=None, repr=False)
    key_version: int | None = None
    error: EkmsRpcError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> bytes:
        """The data, or raise the item's error."""
        if self.error is not None:
            raise self.error
        return self.data or b""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of unary calls that fail with UNAVAILABLE (nothing else is retried).

    ``max_attempts`` counts the first try. The wait before retry ``n`` is drawn uniformly from
    ``[0, min(max_backoff, initial_backoff * multiplier ** (n - 1))]`` ("full jitter"), so
    many clients retrying at once spread out.
    """

    max_attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts counts the first try: at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and the multiplier >= 1")

    def backoff(self, retry: int) -> float:
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret
