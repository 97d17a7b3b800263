"""The real clock and randomness (the ``Clock`` and ``RandomSource`` ports)."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class SystemRandom:
    """CSPRNG-backed: key material and nonces come from the OS."""

    def token_bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def uuid(self) -> uuid.UUID:
        return uuid.uuid4()
