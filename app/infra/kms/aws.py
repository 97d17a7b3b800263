"""AWS KMS through aiobotocore: ``AwsKmsConnector`` pools clients, ``AwsKms`` serves one key.

Credentials come only from the standard AWS credential chain (environment, shared profile, IRSA
web identity, container or instance metadata); nothing here accepts a secret as a parameter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from app.application.ports import (
    ExternalKeyDescription,
    ExternalKeyRef,
    KeyManagementService,
    KmsWrapped,
    RotationState,
)
from app.application.ports.kms import check_key_to_wrap
from app.domain.errors import DecryptionFailed, EkmsError, InvalidInput, KeyUnavailable, Reason
from app.domain.values import ExternalKeyStatus, KmsProvider
from app.infra.kms.aws_errors import aws_errors

_STATES = {
    "Enabled": ExternalKeyStatus.ENABLED,
    "Disabled": ExternalKeyStatus.DISABLED,
    "PendingDeletion": ExternalKeyStatus.PENDING_DELETION,
    "PendingReplicaDeletion": ExternalKeyStatus.PENDING_DELETION,
}
_ERROR_STATES = {
    Reason.EXTERNAL_KEY_DELETED: ExternalKeyStatus.DELETED,
    Reason.EXTERNAL_KEY_DISABLED: ExternalKeyStatus.DISABLED,
    Reason.EXTERNAL_KEY_PENDING_DELETION: ExternalKeyStatus.PENDING_DELETION,
}

_ClientKey = tuple[str | None, str | None]


class AwsKmsConnector:
    """Opens ``AwsKms`` for a key; one aiobotocore client per (region, endpoint), closed by
    ``aclose()``. A ref's own region/endpoint win over the defaults; a region left ``None``
    everywhere falls back to the AWS chain (``AWS_REGION`` / ``AWS_DEFAULT_REGION``, profile).

    ``max_attempts`` is the total number of tries per call (standard retry mode, which backs
    off and retries throttling and transient errors); the timeouts apply to each try.
    """

    def __init__(
        self,
        *,
        default_region: str | None,
        default_endpoint_url: str | None,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_attempts: int = 3,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts counts the first try: it must be at least 1")
        self.default_region = default_region
        self.default_endpoint_url = default_endpoint_url
        self._config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # total_max_attempts counts the first try (botocore's "max_attempts" counts retries).
            retries={"mode": "standard", "total_max_attempts": max_attempts},
        )
        self._session = get_session()
        self._clients: dict[_ClientKey, Any] = {}
        self._stack = AsyncExitStack()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"AwsKmsConnector(default_region={self.default_region!r}, "
            f"default_endpoint_url={self.default_endpoint_url!r}, clients={len(self._clients)})"
        )

    def connect(self, ref: ExternalKeyRef) -> AwsKms:
        if ref.provider is not KmsProvider.AWS:
            raise InvalidInput(f"not an AWS KMS key reference ({ref.provider.value})")
        return AwsKms(ref, self)

    def endpoint(self, ref: ExternalKeyRef) -> str:
        if self.default_endpoint_url:
            return self.default_endpoint_url
        region = ref.location or self.default_region
        return f"https://kms.{region}.amazonaws.com" if region else "AWS KMS (the chain's region)"

    @property
    def pool_size(self) -> int:
        """How many clients are open (one per distinct region/endpoint used so far)."""
        return len(self._clients)

    async def client_for(self, ref: ExternalKeyRef) -> Any:
        """The pooled aiobotocore KMS client for ``ref``, created on first use."""
        key: _ClientKey = (ref.location or self.default_region, self.default_endpoint_url)
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                region, endpoint_url = key
                try:
                    client = await self._stack.enter_async_context(
                        self._session.create_client(
                            "kms",
                            region_name=region,
                            endpoint_url=endpoint_url,
                            config=self._config,
                        )
                    )
                except ValueError as exc:  # botocore's "Invalid endpoint: ..."
                    raise InvalidInput(
                        "the AWS KMS endpoint URL is invalid", field="endpoint_url"
                    ) from exc
                self._clients[key] = client
            return client

    async def aclose(self) -> None:
        """Close every pooled client. The connector can be used again afterwards."""
        async with self._lock:
            stack, self._stack = self._stack, AsyncExitStack()
            self._clients.clear()
            await stack.aclose()
        self._lock = asyncio.Lock()  # the next use may be on another event loop


class AwsKms(KeyManagementService):
    """One AWS KMS key. Errors follow ``app.infra.kms.aws_errors``."""

    def __init__(self, ref: ExternalKeyRef, connector: AwsKmsConnector) -> None:
        self.ref = ref
        self._connector = connector

    def __repr__(self) -> str:
        return f"AwsKms(ref={self.ref!r})"

    async def wrap(self, key_to_wrap: bytes, context: Mapping[str, str]) -> KmsWrapped:
        check_key_to_wrap(key_to_wrap)
        with aws_errors():
            client = await self._connector.client_for(self.ref)
            resp = await client.encrypt(
                KeyId=self.ref.key_id, Plaintext=key_to_wrap, EncryptionContext=dict(context)
            )
        return KmsWrapped(ciphertext=resp["CiphertextBlob"], key_name=resp["KeyId"])

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        _check_ciphertext(wrapped)
        with aws_errors(ciphertext_input=True):
            client = await self._connector.client_for(self.ref)
            resp = await client.decrypt(
                CiphertextBlob=wrapped, KeyId=self.ref.key_id, EncryptionContext=dict(context)
            )
        plaintext: bytes = resp["Plaintext"]
        return plaintext

    async def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> KmsWrapped:
        """ReEncrypt to the same key: the result is under the key's current material."""
        _check_ciphertext(wrapped)
        with aws_errors(ciphertext_input=True):
            client = await self._connector.client_for(self.ref)
            resp = await client.re_encrypt(
                CiphertextBlob=wrapped,
                SourceKeyId=self.ref.key_id,
                SourceEncryptionContext=dict(context),
                DestinationKeyId=self.ref.key_id,
                DestinationEncryptionContext=dict(context),
            )
        return KmsWrapped(ciphertext=resp["CiphertextBlob"], key_name=resp["KeyId"])

    async def describe(self) -> ExternalKeyDescription:
        try:
            with aws_errors():
                client = await self._connector.client_for(self.ref)
                meta = (await client.describe_key(KeyId=self.ref.key_id))["KeyMetadata"]
        except EkmsError as err:
            return _description_for_error(err)
        state = str(meta.get("KeyState") or "unknown")
        status = _STATES.get(state, ExternalKeyStatus.UNAVAILABLE)
        pending = status is ExternalKeyStatus.PENDING_DELETION
        return ExternalKeyDescription(
            status=status,
            key_name=meta.get("Arn"),
            deletion_date=_utc(meta.get("DeletionDate")) if pending else None,
            rotation_enabled=await self._rotation_enabled_or_none(client),
            # Unavailable, PendingImport, Creating, Updating, or a state this code predates.
            reason=None if state in _STATES else f"key state is {state}",
        )

    async def _rotation_enabled_or_none(self, client: Any) -> bool | None:
        # Informational only: a key pending deletion, or a policy without
        # kms:GetKeyRotationStatus, must not turn a good DescribeKey into a failure.
        try:
            with aws_errors():
                resp = await client.get_key_rotation_status(KeyId=self.ref.key_id)
        except EkmsError:
            return None
        return bool(resp.get("KeyRotationEnabled", False))

    async def rotation_state(self) -> RotationState:
        count, last = 0, None
        with aws_errors():
            client = await self._connector.client_for(self.ref)
            paginator = client.get_paginator("list_key_rotations")
            async for page in paginator.paginate(KeyId=self.ref.key_id):
                for rotation in page.get("Rotations", []):
                    count += 1
                    when = _utc(rotation.get("RotationDate"))
                    if when is not None and (last is None or when > last):
                        last = when
            status = await client.get_key_rotation_status(KeyId=self.ref.key_id)
        return RotationState(
            marker=rotation_marker(count, last),
            rotation_enabled=bool(status.get("KeyRotationEnabled", False)),
            rotation_count=count,
            last_rotation=last,
        )


def rotation_marker(count: int, last_rotation: datetime | None) -> str:
    """``aws:rotations=<n>:<last rotation, ISO UTC>``; ``aws:rotations=0`` before any rotation."""
    if count == 0 or last_rotation is None:
        return f"aws:rotations={count}"
    return f"aws:rotations={count}:{last_rotation.astimezone(UTC).isoformat()}"


def _check_ciphertext(wrapped: bytes) -> None:
    if not isinstance(wrapped, bytes):
        raise InvalidInput("wrapped key must be bytes")
    if not wrapped:
        raise DecryptionFailed()


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _description_for_error(err: EkmsError) -> ExternalKeyDescription:
    status = _ERROR_STATES.get(err.reason) if isinstance(err, KeyUnavailable) else None
    if status is not None:
        return ExternalKeyDescription(status=status)
    return ExternalKeyDescription(
        status=ExternalKeyStatus.UNAVAILABLE, reason=err.message, reason_code=err.reason
    )
