"""``EkmsRpcError``: a failed call or item, with its status code and machine-readable reason."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

ERROR_DOMAIN = "ekms"
# The trailer carrying the serialized ``google.rpc.Status`` (gRPC's rich error model).
STATUS_DETAILS_KEY = "grpc-status-details-bin"
_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


class EkmsRpcError(Exception):
    """``code`` is a ``grpc.StatusCode``; ``reason`` the ekms reason (``"MAP_REJECTED"``,
    ``"EXTERNAL_KEY_DISABLED"``, ...) or ``None`` when the server sent none (transport
    failures, INTERNAL). Branch on these, not on ``message``."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = metadata or {}

    @classmethod
    def from_status(cls, status: status_pb2.Status) -> EkmsRpcError:
        """From a ``google.rpc.Status`` (a failed call's rich status, or a per-item status)."""
        info = _error_info(status)
        return cls(
            _CODES.get(status.code, grpc.StatusCode.UNKNOWN),
            status.message,
            reason=info.reason if info is not None else None,
            metadata=dict(info.metadata) if info is not None else None,
        )

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> EkmsRpcError:
        """From a failed call of either API (``grpc.RpcError`` or ``grpc.aio.AioRpcError``)."""
        code: Any = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details: Any = error.details() if hasattr(error, "details") else None
        status = _rich_status(error, code, details)
        if status is not None:
            return cls.from_status(status)
        return cls(code, str(details or ""))


def _rich_status(error: grpc.RpcError, code: Any, details: Any) -> status_pb2.Status | None:
    """The call's ``google.rpc.Status`` trailer, or ``None`` when absent, unreadable or
    inconsistent with the call's own code and details (then the call's status is trusted)."""
    trailers: Any = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        consistent = isinstance(code, grpc.StatusCode) and code.value[0] == status.code
        return status if consistent and details == status.message else None
    return None


def _error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
            return info
    return None
