"""``AsyncEkmsClient``: the asyncio client (a ``grpc.aio.Channel``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from ekms_client import _common as c
from ekms_client import _groups as g
from ekms_client._base import ClientBase
from ekms_client._errors import EkmsRpcError
from ekms_client._types import (
    DataKey,
    Decrypted,
    DecryptItem,
    Encrypted,
    EncryptItem,
    ItemResult,
    Mac,
    Rewrapped,
    Target,
)
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

_R = TypeVar("_R")


class AsyncEkmsClient(ClientBase[grpc.aio.Channel]):
    """The asyncio twin of ``EkmsClient``; create it inside a running event loop and close it
    with ``await client.close()`` or ``async with``."""

    _channels = grpc.aio

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
        request = c.encrypt_request(target, plaintext, context)
        return c.encrypted(await self._unary(self._stub.Encrypt, request, deadline))

    async def decrypt(
        self,
        target: Target,
        ciphertext: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> Decrypted:
        request = c.decrypt_request(target, ciphertext, context)
        return c.decrypted(await self._unary(self._stub.Decrypt, request, deadline))

    async def rewrap(
        self,
        target: Target,
        ciphertext: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> Rewrapped:
        request = c.rewrap_request(target, ciphertext, context)
        return c.rewrapped(await self._unary(self._stub.Rewrap, request, deadline))

    # --- data keys (envelope encryption) ---------------------------------------------------------

    async def generate_data_key(
        self,
        target: Target,
        *,
        context: bytes = b"",
        with_plaintext: bool = True,
        deadline: float | None = None,
    ) -> DataKey:
        """A fresh AES-256 data key sealed under the target's active key (needs ``encrypt``);
        ``with_plaintext=False`` returns the sealed form only."""
        request = c.generate_data_key_request(target, context)
        method = (
            self._stub.GenerateDataKey
            if with_plaintext
            else self._stub.GenerateDataKeyWithoutPlaintext
        )
        return c.data_key(await self._unary(method, request, deadline))

    async def decrypt_data_key(
        self,
        target: Target,
        sealed_key: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> DataKey:
        """The plaintext of a sealed data key (needs ``decrypt``; the same context)."""
        request = c.decrypt_data_key_request(target, sealed_key, context)
        response = await self._unary(self._stub.DecryptDataKey, request, deadline)
        return c.opened_data_key(response, sealed_key)

    # --- blind indexes -----------------------------------------------------------------------

    async def compute_mac(
        self,
        target: Target,
        value: bytes,
        *,
        context: bytes = b"",
        key_version: int = 0,
        deadline: float | None = None,
    ) -> Mac:
        """The blind-index MAC of ``value`` (needs ``mac``); ``key_version`` 0 is the active one."""
        request = c.compute_mac_request(target, value, context, key_version)
        return c.computed_mac(await self._unary(self._stub.ComputeMac, request, deadline))

    async def verify_mac(
        self,
        target: Target,
        value: bytes,
        mac: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> int:
        """The key version ``mac`` was made with; ``EkmsRpcError`` when it does not verify."""
        request = c.verify_mac_request(target, value, mac, context)
        return int((await self._unary(self._stub.VerifyMac, request, deadline)).key_version)

    # --- batches --------------------------------------------------------------------------------

    async def encrypt_batch(
        self,
        items: Iterable[EncryptItem],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> list[ItemResult]:
        request = c.encrypt_batch_request(items, target)
        return c.encrypt_results(await self._unary(self._stub.EncryptBatch, request, deadline))

    async def decrypt_batch(
        self,
        items: Iterable[DecryptItem],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> list[ItemResult]:
        request = c.decrypt_batch_request(items, target)
        return c.decrypt_results(await self._unary(self._stub.DecryptBatch, request, deadline))

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

    async def encrypt_groups(
        self,
        groups: Iterable[Sequence[EncryptItem]] | AsyncIterable[Sequence[EncryptItem]],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[list[ItemResult]]:
        """As ``EkmsClient.encrypt_groups``: one list of item results per non-empty group."""
        sent: g.Sent = {}
        requests = g.agroup_requests(groups, sent, target, c.encrypt_item_pb, pb.EncryptItem)
        convert = g.group_results(sent, c.encrypt_result)
        async for results in self._stream(self._stub.EncryptStream, requests, convert, deadline):
            yield results

    async def decrypt_groups(
        self,
        groups: Iterable[Sequence[DecryptItem]] | AsyncIterable[Sequence[DecryptItem]],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[list[ItemResult]]:
        sent: g.Sent = {}
        requests = g.agroup_requests(groups, sent, target, c.decrypt_item_pb, pb.DecryptItem)
        convert = g.group_results(sent, c.decrypt_result)
        async for results in self._stream(self._stub.DecryptStream, requests, convert, deadline):
            yield results

    # --- plumbing -------------------------------------------------------------------------------

    async def _unary(self, method: Any, request: Any, deadline: float | None) -> Any:
        attempt = 1
        while True:
            try:
                return await method(
                    request, metadata=self._metadata(), timeout=self._timeout(deadline)
                )
            except grpc.aio.AioRpcError as exc:
                await asyncio.sleep(c.backoff_or_raise(exc, attempt, self._retry))
                attempt += 1

    async def _stream(
        self,
        method: Any,
        requests: AsyncIterator[Any],
        convert: Callable[[Any], _R],
        deadline: float | None,
    ) -> AsyncIterator[_R]:
        call = method(requests, metadata=self._metadata(), timeout=deadline)
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
