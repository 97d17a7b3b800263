"""The ``ekms.v1.Crypto`` servicer: translation only; ``CryptoService`` does the work.

Errors are raised, never aborted here: ``boundary`` maps them. A batch goes to
``CryptoService.run_batch`` with the way each message becomes an ``Item``: the use case checks
its size first, and a message that cannot be translated (no or a bad target) gets its own error
result while the rest still run. A stream item that cannot be is that item's error result.

Parsed targets are cached (``TargetCache``: per batch or stream, and one for single calls), and
batch responses are filled in place (``results.add``) rather than built as separate messages
and copied: both showed in the profile of the batch path.
"""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from app.application.crypto import CryptoService, Item, ItemResult
from app.domain.errors import EkmsError
from app.domain.values import Caller, Operation
from app.grpc.auth import Grant, current_caller, current_grant
from app.grpc.convert import TargetCache, item_status
from app.grpc.errors import OK_STATUS
from app.grpc.gen.ekms.v1 import crypto_pb2 as pb
from app.grpc.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc
from app.grpc.streams import holds_stream_slot

_ItemOp = Callable[[Caller, Item], Awaitable[ItemResult]]
_PLAINTEXT = operator.attrgetter("plaintext")
_CIPHERTEXT = operator.attrgetter("ciphertext")


class CryptoServicer(pb_grpc.CryptoServicer):
    def __init__(self, crypto: CryptoService, *, max_batch_items: int) -> None:
        self._crypto = crypto
        self._max_batch_items = max_batch_items
        self._targets = TargetCache()  # single calls: callers name the same few targets

    # --- one item -------------------------------------------------------------------------------

    async def Encrypt(self, request: pb.EncryptRequest, context: Any) -> pb.EncryptResponse:
        item = Item(self._targets.resolve(request.target), request.plaintext, request.context)
        result = await self._crypto.encrypt(current_caller(), item)
        return pb.EncryptResponse(ciphertext=result.data, key_version=result.key_version)

    async def Decrypt(self, request: pb.DecryptRequest, context: Any) -> pb.DecryptResponse:
        item = Item(self._targets.resolve(request.target), request.ciphertext, request.context)
        result = await self._crypto.decrypt(current_caller(), item)
        return pb.DecryptResponse(plaintext=result.data, key_version=result.key_version)

    async def Rewrap(self, request: pb.RewrapRequest, context: Any) -> pb.RewrapResponse:
        item = Item(self._targets.resolve(request.target), request.ciphertext, request.context)
        result = await self._crypto.rewrap(current_caller(), item)
        return pb.RewrapResponse(
            ciphertext=result.data,
            key_version=result.key_version,
            changed=result.data != request.ciphertext,
        )

    # --- batches --------------------------------------------------------------------------------

    async def EncryptBatch(
        self, request: pb.EncryptBatchRequest, context: Any
    ) -> pb.EncryptBatchResponse:
        items = request.items
        results = await self._batch(Operation.ENCRYPT, request, _PLAINTEXT)
        response = pb.EncryptBatchResponse()
        add = response.results.add
        for m, r in zip(items, results, strict=True):
            if r.error is None:
                add(id=m.id, ciphertext=r.data, key_version=r.key_version).status.CopyFrom(
                    OK_STATUS
                )
            else:
                add(id=m.id, status=item_status(r, method="EncryptBatch"))
        return response

    async def DecryptBatch(
        self, request: pb.DecryptBatchRequest, context: Any
    ) -> pb.DecryptBatchResponse:
        items = request.items
        results = await self._batch(Operation.DECRYPT, request, _CIPHERTEXT)
        response = pb.DecryptBatchResponse()
        add = response.results.add
        for m, r in zip(items, results, strict=True):
            if r.error is None:
                add(id=m.id, plaintext=r.data, key_version=r.key_version).status.CopyFrom(OK_STATUS)
            else:
                add(id=m.id, status=item_status(r, method="DecryptBatch"))
        return response

    async def _batch(
        self,
        operation: Operation,
        request: pb.EncryptBatchRequest | pb.DecryptBatchRequest,
        value: Callable[[Any], bytes],
    ) -> list[ItemResult]:
        resolve = TargetCache(request.target if request.HasField("target") else None).resolve

        def to_item(message: pb.EncryptItem | pb.DecryptItem) -> Item:  # runs per item
            target = message.target if message.HasField("target") else None
            return Item(resolve(target), value(message), message.context)

        return await self._crypto.run_batch(
            operation, current_caller(), request.items, to_item, max_items=self._max_batch_items
        )

    # --- streams --------------------------------------------------------------------------------

    @holds_stream_slot
    async def EncryptStream(
        self, request_iterator: AsyncIterator[pb.EncryptItem], context: Any
    ) -> AsyncIterator[pb.EncryptResult]:
        grant, targets = current_grant(), TargetCache()
        async for message in request_iterator:
            result = await self._stream_item(
                self._crypto.encrypt, grant, targets, message, message.plaintext
            )
            yield _encrypt_result(message.id, result, "EncryptStream")

    @holds_stream_slot
    async def DecryptStream(
        self, request_iterator: AsyncIterator[pb.DecryptItem], context: Any
    ) -> AsyncIterator[pb.DecryptResult]:
        grant, targets = current_grant(), TargetCache()
        async for message in request_iterator:
            result = await self._stream_item(
                self._crypto.decrypt, grant, targets, message, message.ciphertext
            )
            yield _decrypt_result(message.id, result, "DecryptStream")

    @staticmethod
    async def _stream_item(
        op: _ItemOp,
        grant: Grant,
        targets: TargetCache,
        message: pb.EncryptItem | pb.DecryptItem,
        data: bytes,
    ) -> ItemResult:
        # A stream can outlive its token: an expired one ends the stream (UNAUTHENTICATED).
        grant.check()
        # Any other domain error, a transient one included, is this item's result: the stream
        # goes on.
        try:
            item = Item(targets.resolve(_target_of(message)), data, message.context)
            return await op(grant.caller, item)
        except EkmsError as exc:
            return ItemResult(error=exc)


def _target_of(message: pb.EncryptItem | pb.DecryptItem) -> pb.Target | None:
    return message.target if message.HasField("target") else None


def _encrypt_result(item_id: str, result: ItemResult, method: str) -> pb.EncryptResult:
    return pb.EncryptResult(
        id=item_id,
        status=item_status(result, method=method),
        ciphertext=result.data,
        key_version=result.key_version,
    )


def _decrypt_result(item_id: str, result: ItemResult, method: str) -> pb.DecryptResult:
    return pb.DecryptResult(
        id=item_id,
        status=item_status(result, method=method),
        plaintext=result.data,
        key_version=result.key_version,
    )
