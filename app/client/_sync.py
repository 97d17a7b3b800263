"""``EkmsClient``: the blocking client (a ``grpc.Channel``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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


class EkmsClient:
    """Blocking client. ``address`` is ``host:port``; ``credentials`` (e.g.
    ``grpc.ssl_channel_credentials(...)``) makes the channel TLS, else it is plaintext, and
    then a ``token`` is refused (``ValueError``) unless ``address`` is loopback or a Unix
    socket, or ``insecure=True`` says the network is trusted (a mesh sidecar doing mTLS).
    ``channel`` uses a channel you built yourself (then ``address``/``credentials``/``options``
    /``insecure`` are ignored, the channel's security is yours, and ``close()`` leaves it
    open)."""

    def __init__(
        self,
        address: str = "",
        *,
        token: c.TokenSource = None,
        credentials: grpc.ChannelCredentials | None = None,
        deadline: float = c.DEFAULT_DEADLINE,
        retry: RetryPolicy | None = None,
        options: Sequence[tuple[str, Any]] = (),
        channel: grpc.Channel | None = None,
        insecure: bool = False,
    ) -> None:
        self._owns_channel = channel is None
        if channel is None:
            c.refuse_token_in_clear(
                address, token=token, credentials=credentials, insecure=insecure
            )
            channel = (
                grpc.secure_channel(address, credentials, options=list(options))
                if credentials is not None
                else grpc.insecure_channel(address, options=list(options))
            )
        self._channel = channel
        self._stub = pb_grpc.CryptoStub(channel)  # type: ignore[no-untyped-call]
        self._token = token
        self._deadline = deadline
        self._retry = retry or RetryPolicy()

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
        request = pb.EncryptRequest(
            target=c.target_pb(target), plaintext=plaintext, context=context
        )
        response: pb.EncryptResponse = self._unary(self._stub.Encrypt, request, deadline)
        return Encrypted(response.ciphertext, response.key_version)

    def decrypt(
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
        response: pb.DecryptResponse = self._unary(self._stub.Decrypt, request, deadline)
        return Decrypted(response.plaintext, response.key_version)

    def rewrap(
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
        response: pb.RewrapResponse = self._unary(self._stub.Rewrap, request, deadline)
        return Rewrapped(response.ciphertext, response.key_version, response.changed)

    # --- batches --------------------------------------------------------------------------------

    def encrypt_batch(
        self,
        items: Iterable[EncryptItem],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> list[ItemResult]:
        """One result per item, in order; a failed item has ``error`` set, the rest still run."""
        request = pb.EncryptBatchRequest(
            target=c.optional_target_pb(target), items=[c.encrypt_item_pb(i) for i in items]
        )
        response: pb.EncryptBatchResponse = self._unary(self._stub.EncryptBatch, request, deadline)
        return [c.encrypt_result(r) for r in response.results]

    def decrypt_batch(
        self,
        items: Iterable[DecryptItem],
        *,
        target: Target | None = None,
        deadline: float | None = None,
    ) -> list[ItemResult]:
        request = pb.DecryptBatchRequest(
            target=c.optional_target_pb(target), items=[c.decrypt_item_pb(i) for i in items]
        )
        response: pb.DecryptBatchResponse = self._unary(self._stub.DecryptBatch, request, deadline)
        return [c.decrypt_result(r) for r in response.results]

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

    # --- plumbing -------------------------------------------------------------------------------

    def _unary(self, method: Any, request: Any, deadline: float | None) -> Any:
        attempt = 1
        while True:
            try:
                return method(
                    request, metadata=c.metadata(self._token), timeout=deadline or self._deadline
                )
            except grpc.RpcError as exc:
                if c.is_retryable(exc) and attempt < self._retry.max_attempts:
                    time.sleep(self._retry.backoff(attempt))
                    attempt += 1
                    continue
                raise EkmsRpcError.from_rpc_error(exc) from exc

    def _stream(
        self,
        method: Any,
        requests: Iterator[Any],
        convert: Callable[[Any], ItemResult],
        deadline: float | None,
    ) -> Iterator[ItemResult]:
        try:
            for message in method(requests, metadata=c.metadata(self._token), timeout=deadline):
                yield convert(message)
        except grpc.RpcError as exc:
            raise EkmsRpcError.from_rpc_error(exc) from exc
