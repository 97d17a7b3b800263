"""Bodies of /api/v1/xks/stores and /api/v1/xks/keys (the external key store's admin)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.api.schemas.common import InputModel
from app.application.xks.admin import IssuedCredential, KeyChanges, KeyInput, StoreInput
from app.domain.xks import XksKey, XksKeyBackend, XksKeyStatus, XksKeyUsage, XksStore

_RULES = Field(default=None, max_length=32)


class XksStoreIn(InputModel):
    """A logical key store: AWS calls it under ``{uri_prefix}/kms/xks/v1``, signed for
    ``region``. A SigV4 credential is generated; its secret is in this answer only."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    uri_prefix: str = Field(
        default="", max_length=116, description="'' or e.g. `/keystores/payments`"
    )
    region: str = Field(min_length=1, max_length=64, description="the AWS region of the store")

    def to_input(self) -> StoreInput:
        return StoreInput(self.name, self.uri_prefix, self.region)


class XksStoreUpdate(InputModel):
    """Credential rotation: add a second credential, then remove the old one; or move the
    store to another AWS region (its requests are then signed for that one)."""

    add_credential: bool = False
    remove_access_key_id: str | None = Field(default=None, max_length=30)
    region: str | None = Field(default=None, min_length=1, max_length=64)


class XksCredentialOut(BaseModel):
    access_key_id: str
    created_at: datetime


class XksIssuedOut(BaseModel):
    """Enter these in AWS (CreateCustomKeyStore / UpdateCustomKeyStore): shown once."""

    AccessKeyId: str
    RawSecretAccessKey: str


class XksStoreOut(BaseModel):
    id: uuid.UUID
    name: str
    uri_prefix: str
    xks_proxy_uri_path: str = Field(description="AWS's XksProxyUriPath for this store")
    region: str
    credentials: list[XksCredentialOut]
    created_at: datetime
    issued_credential: XksIssuedOut | None = Field(
        default=None, description="the new credential's secret, in this answer only"
    )

    @classmethod
    def of(cls, store: XksStore, issued: IssuedCredential | None = None) -> XksStoreOut:
        return cls(
            id=store.id,
            name=store.name,
            uri_prefix=store.uri_prefix,
            xks_proxy_uri_path=store.uri_path,
            region=store.region,
            credentials=[
                XksCredentialOut(access_key_id=c.access_key_id, created_at=c.created_at)
                for c in store.credentials
            ],
            created_at=store.created_at,
            issued_credential=None
            if issued is None
            else XksIssuedOut(
                AccessKeyId=issued.access_key_id, RawSecretAccessKey=issued.secret_access_key
            ),
        )


class XksStoreListOut(BaseModel):
    items: list[XksStoreOut]


class XksKeyIn(InputModel):
    """An AES-256 key: generated in ekms and sealed under its KEK (``backend`` ``ekms``), or
    generated in the PKCS#11 HSM, non-extractable, encrypting there (``pkcs11``)."""

    store_id: uuid.UUID
    external_key_id: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="AWS's externalKeyId (default: the key's id)",
    )
    usage: list[XksKeyUsage] = Field(
        default_factory=lambda: [XksKeyUsage.ENCRYPT, XksKeyUsage.DECRYPT], min_length=1
    )
    allowed_principals: list[str] = Field(default_factory=list, max_length=32)
    allowed_operations: list[str] = Field(default_factory=list, max_length=32)
    backend: XksKeyBackend = Field(
        default=XksKeyBackend.EKMS, description="`ekms` (default) or `pkcs11` (in the HSM)"
    )

    def to_input(self) -> KeyInput:
        return KeyInput(
            self.store_id,
            self.external_key_id,
            frozenset(self.usage),
            tuple(self.allowed_principals),
            tuple(self.allowed_operations),
            self.backend,
        )


class XksKeyUpdate(InputModel):
    enabled: bool | None = None
    usage: list[XksKeyUsage] | None = Field(default=None, min_length=1)
    allowed_principals: list[str] | None = _RULES
    allowed_operations: list[str] | None = _RULES

    def to_changes(self) -> KeyChanges:
        def opt(values: list[str] | None) -> tuple[str, ...] | None:
            return None if values is None else tuple(values)

        return KeyChanges(
            enabled=self.enabled,
            usage=None if self.usage is None else frozenset(self.usage),
            allowed_principals=opt(self.allowed_principals),
            allowed_operations=opt(self.allowed_operations),
        )


class XksKeyOut(BaseModel):
    id: uuid.UUID
    store_id: uuid.UUID
    external_key_id: str
    key_spec: str = "AES_256"
    backend: XksKeyBackend
    usage: list[XksKeyUsage]
    status: XksKeyStatus
    allowed_principals: list[str]
    allowed_operations: list[str]
    created_at: datetime | None

    @classmethod
    def of(cls, key: XksKey) -> XksKeyOut:
        return cls(
            id=key.id,
            store_id=key.store_id,
            external_key_id=key.external_key_id,
            backend=key.backend,
            usage=sorted(key.usage),
            status=key.status,
            allowed_principals=list(key.allowed_principals),
            allowed_operations=list(key.allowed_operations),
            created_at=key.created_at,
        )


class XksKeyListOut(BaseModel):
    items: list[XksKeyOut]
