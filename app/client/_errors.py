"""``EkmsRpcError``: a failed call or item, with its status code and machine-readable reason."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "ekms"
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
        try:
            status = rpc_status.from_call(error)
        except (ValueError, AttributeError):  # inconsistent trailer: trust the call's own status
            status = None
        if status is not None:
            return cls.from_status(status)
        return cls(code, str(details or ""))


def _error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
            return info
    return None
