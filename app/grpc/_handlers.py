"""Rebuilding a ``grpc.RpcMethodHandler`` around new behaviour, keeping its kind and codecs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[..., Any]
"""``(request or request iterator, context)`` -> a response awaitable or an async iterator."""


def replace_behavior(
    handler: grpc.RpcMethodHandler,
    wrap_unary_response: Callable[[Behavior], Behavior],
    wrap_stream_response: Callable[[Behavior], Behavior],
) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour wrapped: unary-response behaviours (coroutines) by the
    first function, stream-response behaviours (async generators) by the second."""
    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            wrap_unary_response(handler.unary_unary), **codecs
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            wrap_stream_response(handler.unary_stream), **codecs
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            wrap_unary_response(handler.stream_unary), **codecs
        )
    return grpc.stream_stream_rpc_method_handler(
        wrap_stream_response(handler.stream_stream), **codecs
    )


def method_name(full_method: str) -> str:
    """``/ekms.v1.Crypto/Encrypt`` -> ``Encrypt`` (bounded: only registered methods get here)."""
    return full_method.rsplit("/", 1)[-1]
