"""The requests of each case, serialized once by the orchestrator and shipped to the clients."""

from __future__ import annotations

import json
import os
from base64 import b64encode
from dataclasses import dataclass

import grpc
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from app.domain import ciphertext as ct
from app.grpc.gen.ekms.bench.v1 import echo_pb2
from bench.stack import APP_ROLE, COLUMN, MODULE, TABLE

__all__ = ["APP_ROLE", "COLUMN", "MODULE", "TABLE"]

BATCH_ITEMS = 1000
POOL = 64  # distinct requests per case, cycled
GROUP_ITEMS = 100  # items per stream message in the multi-item stream cases


def field_target() -> pb.Target:
    return pb.Target(field=pb.Field(table=TABLE, column=COLUMN))


def context(i: int) -> bytes:
    return f"row-{i:06d}".encode()


@dataclass
class Workload:
    """What a client sends for one case."""

    kind: str  # "unary" | "stream" | "rest"
    method: str
    requests: list[bytes]
    response_type: str
    fields_per_op: int = 1


def seal_pool(target: str, token: str, size: int, n: int) -> list[tuple[bytes, bytes]]:
    """``n`` (ciphertext, context) pairs of ``size``-byte values, made by the server itself."""
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(target) as channel:
        encrypt = channel.unary_unary(
            "/ekms.v1.Crypto/EncryptBatch",
            request_serializer=pb.EncryptBatchRequest.SerializeToString,
            response_deserializer=pb.EncryptBatchResponse.FromString,
        )
        request = pb.EncryptBatchRequest(
            target=field_target(),
            items=[
                pb.EncryptItem(plaintext=os.urandom(size), context=context(i)) for i in range(n)
            ],
        )
        response = encrypt(request, metadata=metadata, timeout=30)
    bad = [r.status for r in response.results if r.status.code != 0]
    if bad:
        raise RuntimeError(f"sealing the bench values failed: {bad[0]}")
    return [(r.ciphertext, context(i)) for i, r in enumerate(response.results)]


def echo(size: int) -> Workload:
    requests = [
        echo_pb2.EchoRequest(payload=os.urandom(size)).SerializeToString() for _ in range(POOL)
    ]
    return Workload("unary", "/ekms.bench.v1.Echo/Echo", requests, "echo")


def echo_stream(size: int) -> Workload:
    requests = [
        echo_pb2.EchoRequest(id=str(i), payload=os.urandom(size)).SerializeToString()
        for i in range(POOL)
    ]
    return Workload("stream", "/ekms.bench.v1.Echo/EchoStream", requests, "echo")


def encrypt(size: int) -> Workload:
    requests = [
        pb.EncryptRequest(
            target=field_target(), plaintext=os.urandom(size), context=context(i)
        ).SerializeToString()
        for i in range(POOL)
    ]
    return Workload("unary", "/ekms.v1.Crypto/Encrypt", requests, "EncryptResponse")


def data_key() -> Workload:
    """GenerateDataKey: a fresh AES-256 data key sealed under the field's module (the envelope
    format's first call per file or stream)."""
    requests = [
        pb.GenerateDataKeyRequest(target=field_target(), context=context(i)).SerializeToString()
        for i in range(POOL)
    ]
    return Workload("unary", "/ekms.v1.Crypto/GenerateDataKey", requests, "GenerateDataKeyResponse")


def decrypt(sealed: list[tuple[bytes, bytes]]) -> Workload:
    requests = [
        pb.DecryptRequest(target=field_target(), ciphertext=c, context=x).SerializeToString()
        for c, x in sealed[:POOL]
    ]
    return Workload("unary", "/ekms.v1.Crypto/Decrypt", requests, "DecryptResponse")


def encrypt_batch(size: int, items: int = BATCH_ITEMS) -> Workload:
    requests = [
        pb.EncryptBatchRequest(
            target=field_target(),
            items=[
                pb.EncryptItem(id=str(i), plaintext=os.urandom(size), context=context(i))
                for i in range(items)
            ],
        ).SerializeToString()
        for _ in range(4)
    ]
    return Workload(
        "unary", "/ekms.v1.Crypto/EncryptBatch", requests, "EncryptBatchResponse", items
    )


def decrypt_batch(sealed: list[tuple[bytes, bytes]], items: int = BATCH_ITEMS) -> Workload:
    requests = [
        pb.DecryptBatchRequest(
            target=field_target(),
            items=[
                pb.DecryptItem(id=str(i), ciphertext=c, context=x)
                for i, (c, x) in enumerate(sealed[:items])
            ],
        ).SerializeToString()
    ]
    return Workload(
        "unary", "/ekms.v1.Crypto/DecryptBatch", requests, "DecryptBatchResponse", items
    )


def encrypt_stream(size: int) -> Workload:
    requests = [
        pb.EncryptItem(
            id=str(i), target=field_target(), plaintext=os.urandom(size), context=context(i)
        ).SerializeToString()
        for i in range(POOL)
    ]
    return Workload("stream", "/ekms.v1.Crypto/EncryptStream", requests, "EncryptResult")


def decrypt_stream(sealed: list[tuple[bytes, bytes]]) -> Workload:
    requests = [
        pb.DecryptItem(
            id=str(i), target=field_target(), ciphertext=c, context=x
        ).SerializeToString()
        for i, (c, x) in enumerate(sealed[:POOL])
    ]
    return Workload("stream", "/ekms.v1.Crypto/DecryptStream", requests, "DecryptResult")


def encrypt_stream_groups(size: int, per_message: int = GROUP_ITEMS) -> Workload:
    """EncryptStream with ``per_message`` items in each message (a group, default target)."""
    requests = [
        pb.EncryptItem(
            id=f"g{g}",
            target=field_target(),
            items=[
                pb.EncryptItem(id=str(i), plaintext=os.urandom(size), context=context(i))
                for i in range(per_message)
            ],
        ).SerializeToString()
        for g in range(4)
    ]
    return Workload(
        "stream", "/ekms.v1.Crypto/EncryptStream", requests, "EncryptResult", per_message
    )


def decrypt_stream_groups(
    sealed: list[tuple[bytes, bytes]], per_message: int = GROUP_ITEMS
) -> Workload:
    """DecryptStream with ``per_message`` items in each message."""
    requests = [
        pb.DecryptItem(
            id=f"g{g}",
            target=field_target(),
            items=[
                pb.DecryptItem(id=str(i), ciphertext=c, context=x)
                for i, (c, x) in enumerate(sealed[g * per_message : (g + 1) * per_message])
            ],
        ).SerializeToString()
        for g in range(max(1, len(sealed) // per_message))
    ]
    return Workload(
        "stream", "/ekms.v1.Crypto/DecryptStream", requests, "DecryptResult", per_message
    )


def rest_encrypt(size: int) -> Workload:
    bodies = [
        json.dumps(
            {
                "table": TABLE,
                "column": COLUMN,
                "plaintext": b64encode(os.urandom(size)).decode(),
                "context": b64encode(context(i)).decode(),
            }
        ).encode()
        for i in range(POOL)
    ]
    return Workload("rest", "/api/v1/crypto/encrypt", bodies, "json")


def rest_decrypt(sealed: list[tuple[bytes, bytes]]) -> Workload:
    bodies = [
        json.dumps(
            {
                "table": TABLE,
                "column": COLUMN,
                "ciphertext": ct.to_text(c),
                "context": b64encode(x).decode(),
            }
        ).encode()
        for c, x in sealed[:POOL]
    ]
    return Workload("rest", "/api/v1/crypto/decrypt", bodies, "json")
