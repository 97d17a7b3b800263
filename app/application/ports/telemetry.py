"""Where measurements go (Prometheus in production, nothing in tests)."""

from __future__ import annotations

from typing import Protocol


class CallMetrics(Protocol):
    """The outcome of each inbound call: its method, its status code name, its duration."""

    def observe(self, method: str, code: str, seconds: float) -> None: ...
