"""Time and randomness: the only way the use cases read a clock or draw random bytes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """The one clock of the process (``SystemClock``; ``FakeClock`` in tests)."""

    def now(self) -> datetime:
        """Timezone-aware UTC."""
        ...

    def monotonic(self) -> float: ...


class RandomSource(Protocol):
    def token_bytes(self, n: int) -> bytes: ...

    def uuid(self) -> uuid.UUID: ...
