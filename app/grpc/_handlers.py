"""Rebuilding a ``grpc.RpcMethodHandler`` around new behaviour, keeping its kind and codecs;
the interceptor base that sees only the protected (non-exempt) methods."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from app.domain.errors import InvalidInput

Behavior = Callable[..., Any]
"""``(request or request iterator, context)`` -> a response awaitable or an async iterator."""

EXEMPT_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
"""Methods that need no token and are not wrapped by the boundary: health and reflection."""


def is_exempt(method: str) -> bool:
    return method.startswith(EXEMPT_PREFIXES)


class ProtectedInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """An interceptor of the protected methods: ``protect`` gets the handler of every
    registered method that is not exempt (any method added later included: fail closed)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or is_exempt(details.method):
            return handler
        return await self.protect(handler, details)

    async def protect(
        self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        """The handler to serve this protected call with."""
        raise NotImplementedError


def replace_behavior(
    handler: grpc.RpcMethodHandler,
    wrap_unary_response: Callable[[Behavior], Behavior],
    wrap_stream_response: Callable[[Behavior], Behavior],
) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour wrapped: unary-response behaviours (coroutines) by the
    first function, stream-response behaviours (async generators) by the second.

    Requests are parsed inside the behaviour rather than by grpc (which answers UNKNOWN for a
    request that does not parse): bytes that are no message become ``InvalidInput``, which
    the boundary maps to INVALID_ARGUMENT like any other bad input."""
    parse = handler.request_deserializer
    codecs = {"request_deserializer": None, "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            wrap_unary_response(_parsing_one(handler.unary_unary, parse)), **codecs
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            wrap_stream_response(_parsing_one(handler.unary_stream, parse)), **codecs
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            wrap_unary_response(_parsing_each(handler.stream_unary, parse)), **codecs
        )
    return grpc.stream_stream_rpc_method_handler(
        wrap_stream_response(_parsing_each(handler.stream_stream, parse)), **codecs
    )


Parse = Callable[[bytes], Any] | None


def _decode(parse: Parse, raw: Any) -> Any:
    if parse is None:
        return raw
    try:
        return parse(raw)
    except Exception:  # DecodeError and friends: the message says nothing about the bytes
        raise InvalidInput("the request is not a valid message of this method") from None


def _parsing_one(behavior: Behavior, parse: Parse) -> Behavior:
    if parse is None:
        return behavior

    def run(raw: Any, context: Any) -> Any:
        return behavior(_decode(parse, raw), context)

    return run


def _parsing_each(behavior: Behavior, parse: Parse) -> Behavior:
    if parse is None:
        return behavior

    async def messages(raw_iterator: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for raw in raw_iterator:
            yield _decode(parse, raw)

    def run(raw_iterator: Any, context: Any) -> Any:
        return behavior(messages(raw_iterator), context)

    return run


def method_name(full_method: str) -> str:
    """``/ekms.v1.Crypto/Encrypt`` -> ``Encrypt`` (bounded: only registered methods get here)."""
    return full_method.rsplit("/", 1)[-1]
