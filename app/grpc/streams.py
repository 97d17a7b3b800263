"""Stream caps for the ``ekms.v1.Crypto`` stream methods: one slot per open stream.

``holds_stream_slot`` wraps a servicer's stream method: the stream takes a slot from
``CryptoService.open_stream`` before its first message (past a cap the call ends with
RESOURCE_EXHAUSTED, reason TOO_MANY_STREAMS, through the boundary like any domain error) and
gives it back when the call ends in any way. The ``finally`` covers a stream that completes or
fails; the done callback covers a cancelled call whose generator grpc abandons without closing
it at once. Releasing twice is harmless.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

from app.application.limits import StreamSlot
from app.domain.values import Caller
from app.grpc.auth import current_caller

Response = TypeVar("Response")


class _SlotSource(Protocol):
    def open_stream(self, caller: Caller) -> StreamSlot: ...


class _Servicer(Protocol):
    _crypto: _SlotSource


_StreamMethod = Callable[[Any, AsyncIterator[Any], Any], AsyncIterator[Response]]


def holds_stream_slot(method: _StreamMethod[Response]) -> _StreamMethod[Response]:
    @functools.wraps(method)
    async def wrapper(
        self: _Servicer, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Response]:
        slot = self._crypto.open_stream(current_caller())
        context.add_done_callback(lambda _: slot.release())
        try:
            async for response in method(self, request_iterator, context):
                yield response
        finally:
            slot.release()

    return wrapper
