"""``AsyncEkmsClient``: the asyncio client (a ``grpc.aio.Channel``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from app.client import _common as c
from app.client._errors import EkmsRpcError
from app.client._types import (
    Decrypted,
    DecryptItem,
    Encrypted,
    EncryptItem,
    ItemResult,
    RetryPolicy,
    Rewrapped,
    Target,
)
from app.grpc.gen.ekms.v1 import crypto_pb2 as pb
from app.grpc.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc


class AsyncEkmsClient:
    """The asyncio twin of ``EkmsClient``; create it inside a running event loop and close it
    with ``await client.close()`` or ``async with``."""

    def __init__(
        self,
        address: str = "",
        *,
        token: c.TokenSource = None,
        credentials: grpc.ChannelCredentials | None = None,
        deadline: float = c.DEFAULT_DEADLINE,
        retry: RetryPolicy | None = None,
        options: Sequence[tuple[str, Any]] = (),
        channel: grpc.aio.Channel | None = None,
        insecure: bool = False,
    ) -> None:
        self._owns_channel = channel is None
        if channel is None:
            c.refuse_token_in_clear(
                address, token=token, credentials=credentials, insecure=insecure
            )
            channel = (
                grpc.aio.secure_channel(address, credentials, options=list(options))
                if credentials is not None
                else grpc.aio.insecure_channel(address, options=list(options))
            )
        self._channel = channel
        self._stub = pb_grpc.CryptoStub(channel)  # type: ignore[no-untyped-call]
        self._token = token
        self._deadline = deadline
        self._retry = retry or RetryPolicy()

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- single items ---------------------------------------------------------------------------

    async def encrypt(
        self,
        target: Target,
        plaintext: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> Encrypted:
        request = pb.EncryptRequest(
            target=c.target_pb(target), plaintext=plaintext, context=context
        )
        response: pb.EncryptResponse = await self._unary(self._stub.Encrypt, request, deadline)
        return Encrypted(response.ciphertext, response.key_version)

    async def decrypt(
        self,
        target: Target,
        ciphertext: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> Decrypted:
        request = pb.DecryptRequest(
            target=c.target_pb(target), ciphertext=ciphertext, context=context
        )
        response: pb.DecryptResponse = await self._unary(self._stub.Decrypt, request, deadline)
        return Decrypted(response.plaintext, response.key_version)

    async def rewrap(
        self,
        target: Target,
        ciphertext: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> Rewrapped:
        request = pb.RewrapRequest(
            target=c.target_pb(target), ciphertext=ciphertext, context=context
        )
        response: pb.RewrapResponse = await self._unary(self._stub.Rewrap, request, deadline)
        return Rewrapped(response.ciphertext, response.key_version, response.changed)

    # --- batches --------------------------------------------------------------------------------

    async def encrypt_batch(
        self,
        items: Iterable[EncryptItem],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> list[ItemResult]:
        request = pb.EncryptBatchRequest(
            target=c.optional_target_pb(target), items=[c.encrypt_item_pb(i) for i in items]
        )
        response: pb.EncryptBatchResponse = await self._unary(
            self._stub.EncryptBatch, request, deadline
        )
        return [c.encrypt_result(r) for r in response.results]

    async def decrypt_batch(
        self,
        items: Iterable[DecryptItem],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> list[ItemResult]:
        request = pb.DecryptBatchRequest(
            target=c.optional_target_pb(target), items=[c.decrypt_item_pb(i) for i in items]
        )
        response: pb.DecryptBatchResponse = await self._unary(
            self._stub.DecryptBatch, request, deadline
        )
        return [c.decrypt_result(r) for r in response.results]

    # --- streams (never retried) ------------------------------------------------------------------

    async def encrypt_stream(
        self,
        items: Iterable[EncryptItem] | AsyncIterable[EncryptItem],
        *,
        deadline: float | None = None,
    ) -> AsyncIterator[ItemResult]:
        """Results as they arrive, matched to items by ``id``."""
        requests = _mapped(items, c.encrypt_item_pb)
        async for result in self._stream(
            self._stub.EncryptStream, requests, c.encrypt_result, deadline
        ):
            yield result

    async def decrypt_stream(
        self,
        items: Iterable[DecryptItem] | AsyncIterable[DecryptItem],
        *,
        deadline: float | None = None,
    ) -> AsyncIterator[ItemResult]:
        requests = _mapped(items, c.decrypt_item_pb)
        async for result in self._stream(
            self._stub.DecryptStream, requests, c.decrypt_result, deadline
        ):
            yield result

    # --- plumbing -------------------------------------------------------------------------------

    async def _unary(self, method: Any, request: Any, deadline: float | None) -> Any:
        attempt = 1
        while True:
            try:
                return await method(
                    request, metadata=c.metadata(self._token), timeout=deadline or self._deadline
                )
            except grpc.aio.AioRpcError as exc:
                if c.is_retryable(exc) and attempt < self._retry.max_attempts:
                    await asyncio.sleep(self._retry.backoff(attempt))
                    attempt += 1
                    continue
                raise EkmsRpcError.from_rpc_error(exc) from exc

    async def _stream(
        self,
        method: Any,
        requests: AsyncIterator[Any],
        convert: Callable[[Any], ItemResult],
        deadline: float | None,
    ) -> AsyncIterator[ItemResult]:
        call = method(requests, metadata=c.metadata(self._token), timeout=deadline)
        try:
            async for message in call:
                yield convert(message)
        except grpc.aio.AioRpcError as exc:
            raise EkmsRpcError.from_rpc_error(exc) from exc
        finally:
            call.cancel()  # no-op once finished; stops the call if the caller stops early


async def _mapped(
    items: Iterable[Any] | AsyncIterable[Any], convert: Callable[[Any], Any]
) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield convert(item)
    else:
        for item in items:
            yield convert(item)
