"""The boundary counts a failed call before its status goes out: grpc.aio's ``abort`` sends
the status to the caller and only then raises, so counting in a ``finally`` let a caller that
had seen the error read the old count (a CI run under load did)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from app.domain.errors import AccessDenied
from app.grpc.boundary import BoundaryInterceptor


class Recording:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def observe(self, method: str, code: str, seconds: float) -> None:
        self.seen.append((method, code))


class AbortingContext:
    """Records what the metrics held at the moment the status was sent."""

    def __init__(self, metrics: Recording) -> None:
        self.metrics = metrics
        self.counted_when_sent: list[tuple[str, str]] | None = None

    async def abort_with_status(self, status: Any) -> None:
        self.counted_when_sent = list(self.metrics.seen)
        raise grpc.aio.AbortError("aborted")

    async def abort(self, code: Any, details: str = "") -> None:
        self.counted_when_sent = list(self.metrics.seen)
        raise grpc.aio.AbortError("aborted")


async def test_a_refused_call_is_counted_before_its_status_is_sent() -> None:
    metrics = Recording()
    boundary = BoundaryInterceptor(metrics)

    async def refuse(request: Any, context: Any) -> Any:
        raise AccessDenied("no policy grants this caller")

    run = boundary._unary("Encrypt", refuse)
    context = AbortingContext(metrics)
    with pytest.raises(grpc.aio.AbortError):
        await run(object(), context)
    assert context.counted_when_sent == [("Encrypt", "PERMISSION_DENIED")]
    assert metrics.seen == [("Encrypt", "PERMISSION_DENIED")], "counted once"
