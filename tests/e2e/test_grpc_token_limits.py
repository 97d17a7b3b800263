"""Issue 10 over a real gRPC server: a stream does not outlive its token (finding 2), tokens
without a bounded lifetime or with a reserved subject are refused (finding 7), and a name with
a trailing newline is INVALID_ARGUMENT, not NOT_FOUND (finding 9).

The server here runs with ``EKMS_JWT_LEEWAY_SECONDS=1`` so that expiry comes quickly. Nothing
is timed: the test waits until the wall clock (the server's clock too) is past ``exp + leeway``
and only then sends the message whose answer it checks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import jwt
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc

from app.bootstrap import build_grpc_server, grpc_options, running
from app.infra.system import SystemClock
from app.infra.tokens import mint_dev_token
from tests.e2e.conftest import (
    JWT_AUDIENCE,
    JWT_ISSUER,
    JWT_SECRET,
    bearer,
    build_world,
    e2e_settings,
    error_info,
    item_reason,
    mint,
    module_target,
)

LEEWAY = 1
OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
async def stub(
    pg_url: str, moto_server: str, aws_env: str, kms_key: str, tmp_path: Path
) -> AsyncIterator[pb_grpc.CryptoStub]:
    settings = e2e_settings(pg_url, moto_server, aws_env, tmp_path, jwt_leeway_seconds=LEEWAY)
    async with running(settings) as container:
        await build_world(container, kms_key)
        server = build_grpc_server(container, grpc_options(settings))
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield pb_grpc.CryptoStub(channel)
        finally:
            await server.stop(0)


def short_token(ttl_seconds: int = 3) -> tuple[str, int]:
    token = mint_dev_token(
        JWT_SECRET,
        sub="billing-svc",
        roles=["billing"],
        ttl_seconds=ttl_seconds,
        issuer=JWT_ISSUER,
        audience=JWT_AUDIENCE,
        clock=SystemClock(),
    )
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    return token, int(exp)


async def wait_until_past(deadline: float) -> None:
    """Poll the clock (no fixed sleep that guesses how long the machine takes)."""
    while time.time() < deadline:
        await asyncio.sleep(0.05)


def encrypt_item(item_id: str) -> pb.EncryptItem:
    return pb.EncryptItem(id=item_id, target=module_target(), plaintext=item_id.encode())


async def test_open_streams_end_unauthenticated_once_their_token_expires(
    stub: pb_grpc.CryptoStub,
) -> None:
    sealed = await stub.Encrypt(
        pb.EncryptRequest(target=module_target(), plaintext=b"old"),
        metadata=bearer(mint("billing-svc", "billing")),
    )
    token, exp = short_token()
    encrypting = stub.EncryptStream(metadata=bearer(token))
    decrypting = stub.DecryptStream(metadata=bearer(token))

    # the token is valid: both streams serve
    await encrypting.write(encrypt_item("before"))
    first = await encrypting.read()
    assert (first.id, item_reason(first.status)) == ("before", (OK, None))
    await decrypting.write(
        pb.DecryptItem(id="before", target=module_target(), ciphertext=sealed.ciphertext)
    )
    opened = await decrypting.read()
    assert (opened.plaintext, item_reason(opened.status)) == (b"old", (OK, None))

    await wait_until_past(exp + LEEWAY)

    # a unary call with the same token is refused, and so is the next message of each stream
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await stub.Encrypt(
            pb.EncryptRequest(target=module_target(), plaintext=b"x"), metadata=bearer(token)
        )
    assert error_info(unary.value) == (UNAUTHENTICATED, "TOKEN_EXPIRED")
    await encrypting.write(encrypt_item("after"))
    await decrypting.write(
        pb.DecryptItem(id="after", target=module_target(), ciphertext=sealed.ciphertext)
    )
    for call in (encrypting, decrypting):
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await call.read()
        assert error_info(ended.value) == (UNAUTHENTICATED, "TOKEN_EXPIRED")
        assert await call.code() is UNAUTHENTICATED


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "system:ekms"},
        {"sub": "SYSTEM:scheduler@replica-1"},
        {"exp": 1e308},
        {"exp": 253402300799},  # 9999-12-31T23:59:59Z
        {"exp": 253402300799, "iat": None},
    ],
    ids=["system-ekms", "system-scheduler", "exp-1e308", "exp-year-9999", "year-9999-no-iat"],
)
async def test_unbounded_or_reserved_tokens_are_unauthenticated(
    stub: pb_grpc.CryptoStub, claims: dict[str, object]
) -> None:
    now = int(time.time())
    body = {
        "sub": "billing-svc",
        "roles": ["billing"],
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    token = jwt.encode({k: v for k, v in body.items() if v is not None}, JWT_SECRET, "HS256")
    request = pb.EncryptRequest(target=module_target(), plaintext=b"x")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Encrypt(request, metadata=bearer(token))
    assert error_info(refused.value) == (UNAUTHENTICATED, "UNAUTHENTICATED")
    details = refused.value.details() or ""
    assert "reserved" in details or "lifetime" in details


@pytest.mark.parametrize(
    "target",
    [
        pb.Target(module="global.billing\n"),
        pb.Target(module="global.billing\r\n"),
        pb.Target(field=pb.Field(table="employees", column="salary\n")),
    ],
    ids=["module-newline", "module-crlf", "column-newline"],
)
async def test_a_name_with_a_trailing_newline_is_invalid_argument(
    stub: pb_grpc.CryptoStub, target: pb.Target
) -> None:
    md = bearer(mint("billing-svc", "billing"))
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await stub.Encrypt(pb.EncryptRequest(target=target, plaintext=b"x"), metadata=md)
    assert error_info(unary.value) == (INVALID, "INVALID_INPUT")
    assert (unary.value.details() or "").isprintable()  # no raw control character echoed

    batch = await stub.EncryptBatch(
        pb.EncryptBatchRequest(items=[pb.EncryptItem(id="1", target=target, plaintext=b"x")]),
        metadata=md,
    )
    assert item_reason(batch.results[0].status) == (INVALID, "INVALID_INPUT")
    assert batch.results[0].status.message.isprintable()
