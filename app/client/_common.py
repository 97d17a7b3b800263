"""What the sync and async clients share: messages in and out, metadata, defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import grpc

from app.client._errors import EkmsRpcError
from app.client._types import DecryptItem, EncryptItem, ItemResult, Target
from app.grpc.gen.ekms.v1 import crypto_pb2 as pb

DEFAULT_DEADLINE = 5.0
"""Seconds each unary attempt may take (the gRPC deadline). Streams have none unless given."""

TokenSource: TypeAlias = str | Callable[[], str] | None
"""A bearer token, or a function returning the current one (called for every call)."""

Metadata = tuple[tuple[str, str], ...]
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def metadata(token: TokenSource) -> Metadata:
    if token is None:
        return ()
    value = token() if callable(token) else token
    return (("authorization", f"Bearer {value}"),)


def target_pb(target: Target) -> pb.Target:
    if target.module:
        return pb.Target(module=target.module)
    return pb.Target(field=pb.Field(table=target.table, column=target.column))


def optional_target_pb(target: Target | None) -> pb.Target | None:
    return target_pb(target) if target is not None else None


def encrypt_item_pb(item: EncryptItem) -> pb.EncryptItem:
    return pb.EncryptItem(
        id=item.id,
        target=optional_target_pb(item.target),
        plaintext=item.plaintext,
        context=item.context,
    )


def decrypt_item_pb(item: DecryptItem) -> pb.DecryptItem:
    return pb.DecryptItem(
        id=item.id,
        target=optional_target_pb(item.target),
        ciphertext=item.ciphertext,
        context=item.context,
    )


def encrypt_result(message: pb.EncryptResult) -> ItemResult:
    if message.status.code != 0:
        return ItemResult(message.id, error=EkmsRpcError.from_status(message.status))
    return ItemResult(message.id, data=message.ciphertext, key_version=message.key_version)


def decrypt_result(message: pb.DecryptResult) -> ItemResult:
    if message.status.code != 0:
        return ItemResult(message.id, error=EkmsRpcError.from_status(message.status))
    return ItemResult(message.id, data=message.plaintext, key_version=message.key_version)


def is_retryable(error: grpc.RpcError) -> bool:
    code = error.code() if hasattr(error, "code") else None
    return bool(code == UNAVAILABLE)
