"""The call boundary: every error becomes a status with its reason, every call is measured.

Outermost interceptor. It wraps the handler of every protected method (see ``auth``) so that:

- an ``EkmsError`` ends the call with the code from ``errors.STATUS_CODES`` and a
  ``google.rpc.Status`` (with ``ErrorInfo``) in the ``grpc-status-details-bin`` trailer;
- anything else ends it with INTERNAL, no details, and a logged correlation id;
- each call adds to the call counter (method, code) and the latency histogram (method).

Servicers therefore raise domain errors and never call ``context.abort`` themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_status import rpc_status

from app.application.ports import CallMetrics
from app.grpc._handlers import Behavior, ProtectedInterceptor, method_name, replace_behavior
from app.grpc.errors import code_of, to_status


class NoMetrics:
    """A ``CallMetrics`` that keeps nothing (tests, or a server built without metrics)."""

    def observe(self, method: str, code: str, seconds: float) -> None:
        return None


@dataclass(slots=True)
class _Outcome:
    """How a call ended. ``observe`` records it once: before an error status is sent (grpc.aio's
    ``abort`` sends the status, then raises), so a caller that saw the error finds it counted."""

    method: str
    metrics: CallMetrics
    started: float = field(default_factory=time.perf_counter)
    code: str = "OK"
    observed: bool = False

    def observe(self) -> None:
        if not self.observed:
            self.observed = True
            self.metrics.observe(self.method, self.code, time.perf_counter() - self.started)


class BoundaryInterceptor(ProtectedInterceptor):
    def __init__(self, metrics: CallMetrics | None = None) -> None:
        self._metrics = metrics or NoMetrics()

    async def protect(
        self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        method = method_name(details.method)
        return replace_behavior(
            handler,
            lambda behavior: self._unary(method, behavior),
            lambda behavior: self._stream(method, behavior),
        )

    @contextmanager
    def _observed(self, method: str) -> Iterator[_Outcome]:
        outcome = _Outcome(method, self._metrics)
        try:
            yield outcome
        except (asyncio.CancelledError, GeneratorExit):
            outcome.code = "CANCELLED"
            raise
        finally:
            outcome.observe()

    def _unary(self, method: str, behavior: Behavior) -> Behavior:
        async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with self._observed(method) as outcome:
                try:
                    return await behavior(request, context)
                except Exception as exc:
                    await _end(context, exc, method, outcome)

        return run

    def _stream(self, method: str, behavior: Behavior) -> Behavior:
        async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with self._observed(method) as outcome:
                try:
                    async for response in behavior(request, context):
                        yield response
                except Exception as exc:
                    await _end(context, exc, method, outcome)

        return run


async def _end(
    context: grpc.aio.ServicerContext, exc: Exception, method: str, outcome: _Outcome
) -> None:
    """End a failed call: an abort already sent is counted with its code and raised again;
    any other exception becomes its status (see ``_abort``)."""
    if isinstance(exc, grpc.aio.AbortError):
        outcome.code = _code_name(context)
        raise exc
    await _abort(context, exc, method, outcome)


async def _abort(
    context: grpc.aio.ServicerContext, exc: Exception, method: str, outcome: _Outcome
) -> None:
    status = to_status(exc, method=method)
    code = code_of(status)
    outcome.code = code.name
    outcome.observe()
    if status.details:
        await context.abort_with_status(rpc_status.to_status(status))
    else:  # INTERNAL: no details trailer at all
        await context.abort(code, status.message)


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
