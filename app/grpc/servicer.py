"""The ``ekms.v1.Crypto`` servicer: translation only; ``CryptoService`` does the work.

Errors are raised, never aborted here: ``boundary`` maps them. A batch, and a stream message
that carries a group of items, is read as columns (``columns.columns_of``) for
``CryptoService.run_columns``, which checks its size first; an item that cannot be translated
(no or a bad target, a group inside a batch) gets its own error result while the rest still
run. The results come back as the serialized repeated field (``columns.encode_results``),
parsed into the response once. A one-item stream message that cannot be translated is that
item's error result.

Parsed targets are cached (``TargetCache``: per batch, group or stream, and one for single
calls): callers name the same few targets.
"""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc

from app.application.crypto import (
    CryptoService,
    DataKeySpec,
    Item,
    ItemResult,
    check_batch_size,
)
from app.application.dataplane.data_keys import DataKeyPair
from app.domain.errors import EkmsError, InvalidInput
from app.domain.values import Caller, Operation
from app.grpc.auth import Grant, current_caller, current_grant
from app.grpc.columns import (
    BATCH_RESULTS,
    GROUP_RESULTS,
    OK_STATUS_BYTES,
    columns_of,
    encode_results,
    error_result,
    varint,
)
from app.grpc.convert import TargetCache
from app.grpc.errors import OK_STATUS, to_status
from app.grpc.streams import holds_stream_slot

_ItemOp = Callable[[Caller, Item], Awaitable[ItemResult]]
_ResultOf = Callable[[Callable[..., Any], Any, ItemResult, str], Any]
_ItemMessage = pb.EncryptItem | pb.DecryptItem | pb.RewrapItem
_Response = TypeVar(
    "_Response", pb.EncryptBatchResponse, pb.DecryptBatchResponse, pb.RewrapBatchResponse
)


class _Rpc(NamedTuple):
    """What the encrypt and decrypt sides of a batch or stream RPC differ in."""

    method: str  # the name unmapped errors are logged with
    operation: Operation
    value: Callable[[Any], bytes]  # an item message's input bytes
    result_of: _ResultOf  # its answer: ``_sealed``, ``_opened`` or ``_rewrapped``
    message: Any  # the result message class (of a stream's answers, of a failed item)


_SPECS = {pb.AES_256: DataKeySpec.AES_256, pb.AES_128: DataKeySpec.AES_128}
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

    # --- data keys ------------------------------------------------------------------------------

    async def GenerateDataKey(
        self, request: pb.GenerateDataKeyRequest, context: Any
    ) -> pb.GenerateDataKeyResponse:
        pair = await self._generate(request)
        return pb.GenerateDataKeyResponse(
            plaintext_key=pair.plaintext_key,
            sealed_key=pair.sealed.sealed_key,
            key_version=pair.sealed.key_version,
        )

    async def GenerateDataKeyWithoutPlaintext(
        self, request: pb.GenerateDataKeyRequest, context: Any
    ) -> pb.GenerateDataKeyWithoutPlaintextResponse:
        sealed = (await self._generate(request)).sealed
        return pb.GenerateDataKeyWithoutPlaintextResponse(
            sealed_key=sealed.sealed_key, key_version=sealed.key_version
        )

    async def _generate(self, request: pb.GenerateDataKeyRequest) -> DataKeyPair:
        target = self._targets.resolve(request.target)
        spec = _SPECS.get(request.key_spec)
        if spec is None:
            raise InvalidInput("unknown key_spec", field="key_spec")
        return await self._crypto.generate_data_key(current_caller(), target, request.context, spec)

    async def DecryptDataKey(
        self, request: pb.DecryptDataKeyRequest, context: Any
    ) -> pb.DecryptDataKeyResponse:
        item = Item(self._targets.resolve(request.target), request.sealed_key, request.context)
        opened = await self._crypto.decrypt_data_key(current_caller(), item)
        return pb.DecryptDataKeyResponse(
            plaintext_key=opened.plaintext_key, key_version=opened.key_version
        )

    # --- blind indexes --------------------------------------------------------------------------

    async def ComputeMac(
        self, request: pb.ComputeMacRequest, context: Any
    ) -> pb.ComputeMacResponse:
        item = Item(self._targets.resolve(request.target), request.value, request.context)
        made = await self._crypto.compute_mac(current_caller(), item, request.key_version or None)
        return pb.ComputeMacResponse(mac=made.mac, key_version=made.key_version)

    async def VerifyMac(self, request: pb.VerifyMacRequest, context: Any) -> pb.VerifyMacResponse:
        item = Item(self._targets.resolve(request.target), request.value, request.context)
        version = await self._crypto.verify_mac(current_caller(), item, request.mac)
        return pb.VerifyMacResponse(key_version=version)

    # --- batches --------------------------------------------------------------------------------

    async def EncryptBatch(
        self, request: pb.EncryptBatchRequest, context: Any
    ) -> pb.EncryptBatchResponse:
        return await self._batch(request, pb.EncryptBatchResponse, _ENCRYPT_BATCH)

    async def DecryptBatch(
        self, request: pb.DecryptBatchRequest, context: Any
    ) -> pb.DecryptBatchResponse:
        return await self._batch(request, pb.DecryptBatchResponse, _DECRYPT_BATCH)

    async def RewrapBatch(
        self, request: pb.RewrapBatchRequest, context: Any
    ) -> pb.RewrapBatchResponse:
        return await self._batch(request, pb.RewrapBatchResponse, _REWRAP_BATCH)

    async def _batch(
        self,
        request: pb.EncryptBatchRequest | pb.DecryptBatchRequest | pb.RewrapBatchRequest,
        response: type[_Response],
        rpc: _Rpc,
    ) -> _Response:
        """Runs the batch as columns (``columns``) and parses the encoded results once."""
        targets = TargetCache(request.target if request.HasField("target") else None)
        check_batch_size(len(request.items), self._max_batch_items)
        body = await self._columns(request.items, targets, rpc, current_caller(), BATCH_RESULTS)
        parsed: _Response = response.FromString(body)
        return parsed

    async def _columns(
        self, messages: Any, targets: TargetCache, rpc: _Rpc, caller: Caller, tag: bytes
    ) -> bytes:
        columns, items = columns_of(messages, targets, rpc.value)
        results = await self._crypto.run_columns(
            rpc.operation, caller, columns, max_items=self._max_batch_items
        )
        inputs = columns.data if rpc.operation is Operation.REWRAP else None
        return encode_results(tag, items, results, error_result(rpc.message, rpc.method), inputs)

    # --- streams --------------------------------------------------------------------------------

    @holds_stream_slot
    def EncryptStream(
        self, request_iterator: AsyncIterator[pb.EncryptItem], context: Any
    ) -> AsyncIterator[pb.EncryptResult]:
        return self._stream(self._crypto.encrypt, request_iterator, _ENCRYPT_STREAM)

    @holds_stream_slot
    def DecryptStream(
        self, request_iterator: AsyncIterator[pb.DecryptItem], context: Any
    ) -> AsyncIterator[pb.DecryptResult]:
        return self._stream(self._crypto.decrypt, request_iterator, _DECRYPT_STREAM)

    async def _stream(
        self,
        op: _ItemOp,
        messages: AsyncIterator[pb.EncryptItem] | AsyncIterator[pb.DecryptItem],
        rpc: _Rpc,
    ) -> AsyncIterator[Any]:
        grant, targets = current_grant(), TargetCache()
        value, result_of, method, make = rpc.value, rpc.result_of, rpc.method, rpc.message
        async for message in messages:
            if message.items:
                yield await self._group(grant, message, rpc)
                continue
            result = await self._stream_item(op, grant, targets, message, value(message))
            yield result_of(make, message, result, method)

    async def _group(self, grant: Grant, message: Any, rpc: _Rpc) -> Any:
        """A stream message with several items: one result with theirs, in order."""
        grant.check()  # as for a single item: an expired token ends the stream
        make = rpc.message
        try:
            if rpc.value(message) or message.context:
                raise InvalidInput("a group carries its values in its items", field="items")
            targets = TargetCache(message.target if message.HasField("target") else None)
            check_batch_size(len(message.items), self._max_batch_items)
            body = await self._columns(message.items, targets, rpc, grant.caller, GROUP_RESULTS)
        except EkmsError as exc:
            return make(id=message.id, status=to_status(exc, method=rpc.method))
        raw_id = message.id.encode()
        head = b"\x0a" + varint(len(raw_id)) + raw_id if raw_id else b""
        return make.FromString(head + OK_STATUS_BYTES + body)

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


def _target_of(message: _ItemMessage) -> pb.Target | None:
    return message.target if message.HasField("target") else None


def _status(result: ItemResult, method: str) -> Any:
    return OK_STATUS if result.error is None else to_status(result.error, method=method)


def _sealed(make: Callable[..., Any], message: Any, result: ItemResult, method: str) -> Any:
    """An ``EncryptResult`` made by ``make`` (the message class, or a batch's ``results.add``)."""
    status = _status(result, method)
    return make(
        id=message.id, status=status, ciphertext=result.data, key_version=result.key_version
    )


def _opened(make: Callable[..., Any], message: Any, result: ItemResult, method: str) -> Any:
    """A ``DecryptResult`` made by ``make`` (the message class, or a batch's ``results.add``)."""
    status = _status(result, method)
    return make(id=message.id, status=status, plaintext=result.data, key_version=result.key_version)


def _rewrapped(make: Callable[..., Any], message: Any, result: ItemResult, method: str) -> Any:
    """A ``RewrapResult``; ``changed`` compares it with the item's ciphertext."""
    status = _status(result, method)
    changed = result.data is not None and result.data != message.ciphertext
    return make(
        id=message.id,
        status=status,
        ciphertext=result.data,
        key_version=result.key_version,
        changed=changed,
    )


_ENCRYPT_BATCH = _Rpc("EncryptBatch", Operation.ENCRYPT, _PLAINTEXT, _sealed, pb.EncryptResult)
_DECRYPT_BATCH = _Rpc("DecryptBatch", Operation.DECRYPT, _CIPHERTEXT, _opened, pb.DecryptResult)
_REWRAP_BATCH = _Rpc("RewrapBatch", Operation.REWRAP, _CIPHERTEXT, _rewrapped, pb.RewrapResult)
_ENCRYPT_STREAM = _Rpc("EncryptStream", Operation.ENCRYPT, _PLAINTEXT, _sealed, pb.EncryptResult)
_DECRYPT_STREAM = _Rpc("DecryptStream", Operation.DECRYPT, _CIPHERTEXT, _opened, pb.DecryptResult)
