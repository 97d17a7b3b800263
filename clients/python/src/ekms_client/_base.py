"""What both clients hold: the channel and its stub, the token, the deadline, the retry policy."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar, Generic, TypeVar

import grpc

from ekms_client import _common as c
from ekms_client._types import RetryPolicy
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc

ChannelT = TypeVar("ChannelT", grpc.Channel, grpc.aio.Channel)


class ClientBase(Generic[ChannelT]):
    """The constructor of ``EkmsClient`` and ``AsyncEkmsClient``: each names the module that
    opens its kind of channel (``grpc`` or ``grpc.aio``) and calls the stub in its own style."""

    _channels: ClassVar[ModuleType]

    def __init__(
        self,
        address: str = "",
        *,
        token: c.TokenSource = None,
        credentials: grpc.ChannelCredentials | None = None,
        deadline: float = c.DEFAULT_DEADLINE,
        retry: RetryPolicy | None = None,
        options: Sequence[tuple[str, Any]] = (),
        channel: ChannelT | None = None,
        insecure: bool = False,
    ) -> None:
        self._owns_channel = channel is None
        if channel is None:
            c.refuse_token_in_clear(
                address, token=token, credentials=credentials, insecure=insecure
            )
            channel = (
                self._channels.secure_channel(address, credentials, options=list(options))
                if credentials is not None
                else self._channels.insecure_channel(address, options=list(options))
            )
        self._channel: ChannelT = channel
        self._stub = pb_grpc.CryptoStub(channel)  # type: ignore[no-untyped-call]
        self._token = token
        self._deadline = deadline
        self._retry = retry or RetryPolicy()

    def _metadata(self) -> c.Metadata:
        return c.metadata(self._token)

    def _timeout(self, deadline: float | None) -> float:
        return deadline or self._deadline
