"""``EkmsClient``: the blocking client (a ``grpc.Channel``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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


class EkmsClient(ClientBase[grpc.Channel]):
    """Blocking client. ``address`` is ``host:port``; ``credentials`` (e.g.
    ``grpc.ssl_channel_credentials(...)``) makes the channel TLS, else it is plaintext, and
    then a ``token`` is refused (``ValueError``) unless ``address`` is loopback or a Unix
    socket, or ``insecure=True`` says the network is trusted (a mesh sidecar doing mTLS).
    ``channel`` uses a channel you built yourself (then ``address``/``credentials``/``options``
    /``insecure`` are ignored, the channel's security is yours, and ``close()`` leaves it
    open)."""

    _channels = grpc

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- single items ---------------------------------------------------------------------------

    def encrypt(
        self,
        target: Target,
        plaintext: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> Encrypted:
        request = c.encrypt_request(target, plaintext, context)
        return c.encrypted(self._unary(self._stub.Encrypt, request, deadline))

    def decrypt(
        self,
        target: Target,
        ciphertext: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> Decrypted:
        request = c.decrypt_request(target, ciphertext, context)
        return c.decrypted(self._unary(self._stub.Decrypt, request, deadline))

    def rewrap(
        self,
        target: Target,
        ciphertext: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> Rewrapped:
        request = c.rewrap_request(target, ciphertext, context)
        return c.rewrapped(self._unary(self._stub.Rewrap, request, deadline))

    # --- data keys (envelope encryption) ---------------------------------------------------------

    def generate_data_key(
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
        return c.data_key(self._unary(method, request, deadline))

    def decrypt_data_key(
        self,
        target: Target,
        sealed_key: bytes,
        *,
        context: bytes = b"",
        deadline: float | None = None,
    ) -> DataKey:
        """The plaintext of a sealed data key (needs ``decrypt``; the same context)."""
        request = c.decrypt_data_key_request(target, sealed_key, context)
        response = self._unary(self._stub.DecryptDataKey, request, deadline)
        return c.opened_data_key(response, sealed_key)

    # --- blind indexes -----------------------------------------------------------------------

    def compute_mac(
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
        return c.computed_mac(self._unary(self._stub.ComputeMac, request, deadline))

    def verify_mac(
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
        return int((self._unary(self._stub.VerifyMac, request, deadline)).key_version)

    # --- batches --------------------------------------------------------------------------------

    def encrypt_batch(
        self,
        items: Iterable[EncryptItem],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> list[ItemResult]:
        """One result per item, in order; a failed item has ``error`` set, the rest still run."""
        request = c.encrypt_batch_request(items, target)
        return c.encrypt_results(self._unary(self._stub.EncryptBatch, request, deadline))

    def decrypt_batch(
        self,
        items: Iterable[DecryptItem],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> list[ItemResult]:
        request = c.decrypt_batch_request(items, target)
        return c.decrypt_results(self._unary(self._stub.DecryptBatch, request, deadline))

    # --- streams (never retried) ------------------------------------------------------------------

    def encrypt_stream(
        self, items: Iterable[EncryptItem], *, deadline: float | None = None
    ) -> Iterator[ItemResult]:
        """Results as they arrive, matched to items by ``id``. Items are sent as the iterable
        yields them (from a gRPC thread), so it may be a generator fed by other work."""
        requests = (c.encrypt_item_pb(item) for item in items)
        yield from self._stream(self._stub.EncryptStream, requests, c.encrypt_result, deadline)

    def decrypt_stream(
        self, items: Iterable[DecryptItem], *, deadline: float | None = None
    ) -> Iterator[ItemResult]:
        requests = (c.decrypt_item_pb(item) for item in items)
        yield from self._stream(self._stub.DecryptStream, requests, c.decrypt_result, deadline)

    def encrypt_groups(
        self,
        groups: Iterable[Sequence[EncryptItem]],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> Iterator[list[ItemResult]]:
        """One stream, each group in one message (``target``: the items' default): yields one
        list per non-empty group, in order, with one result per item, in item order. A
        few hundred items per group amortise the server's per-message cost."""
        sent: g.Sent = {}
        requests = g.group_requests(groups, sent, target, c.encrypt_item_pb, pb.EncryptItem)
        convert = g.group_results(sent, c.encrypt_result)
        yield from self._stream(self._stub.EncryptStream, requests, convert, deadline)

    def decrypt_groups(
        self,
        groups: Iterable[Sequence[DecryptItem]],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> Iterator[list[ItemResult]]:
        sent: g.Sent = {}
        requests = g.group_requests(groups, sent, target, c.decrypt_item_pb, pb.DecryptItem)
        convert = g.group_results(sent, c.decrypt_result)
        yield from self._stream(self._stub.DecryptStream, requests, convert, deadline)

    # --- plumbing -------------------------------------------------------------------------------

    def _unary(self, method: Any, request: Any, deadline: float | None) -> Any:
        attempt = 1
        while True:
            try:
                return method(request, metadata=self._metadata(), timeout=self._timeout(deadline))
            except grpc.RpcError as exc:
                time.sleep(c.backoff_or_raise(exc, attempt, self._retry))
                attempt += 1

    def _stream(
        self,
        method: Any,
        requests: Iterator[Any],
        convert: Callable[[Any], _R],
        deadline: float | None,
    ) -> Iterator[_R]:
        try:
            for message in method(requests, metadata=self._metadata(), timeout=deadline):
                yield convert(message)
        except grpc.RpcError as exc:
            raise EkmsRpcError.from_rpc_error(exc) from exc
