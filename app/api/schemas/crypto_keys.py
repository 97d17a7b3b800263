"""Bodies of /crypto/data-key, /crypto/data-key/decrypt, /crypto/mac and /crypto/mac/verify.

Sealed data keys are ciphertexts in the text form of format v1 (``ekms:v1:...``); plaintext
keys, values and MACs are standard base64.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Base64Text, decode_b64
from app.api.schemas.crypto import MAX_PLAINTEXT_B64, Targeted
from app.application.crypto import DataKeySpec, Item
from app.domain import ciphertext as ct
from app.domain import mac as mac_format

_EXAMPLE_TARGET = {"table": "employees", "column": "iban", "context": "ZG9jLTc="}


class DataKeyIn(Targeted):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_EXAMPLE_TARGET, "key_spec": "AES_256"}]}
    )

    key_spec: Literal["AES_256", "AES_128"] = Field(
        default="AES_256", description="32 or 16 random bytes"
    )
    include_plaintext: bool = Field(
        default=True,
        description="false: the sealed key only (as gRPC GenerateDataKeyWithoutPlaintext)",
    )

    def spec(self) -> DataKeySpec:
        return DataKeySpec[self.key_spec]


class DataKeyOut(BaseModel):
    sealed_key: str = Field(
        description="`ekms:v1:` text form: store it", examples=["ekms:v1:AQE..."]
    )
    key_version: int
    plaintext_key: str | None = Field(
        default=None, description="base64: use it, never store it (absent without plaintext)"
    )


class DataKeyDecryptIn(Targeted):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_EXAMPLE_TARGET, "sealed_key": "ekms:v1:AQE..."}]}
    )

    sealed_key: str = Field(max_length=256, description="`ekms:v1:` text form")

    def item(self) -> Item:
        """``DecryptionFailed`` for a sealed key that is not the canonical text form."""
        return Item(self.target(), ct.from_text(self.sealed_key), decode_b64(self.context))


class DataKeyDecryptOut(BaseModel):
    plaintext_key: str = Field(description="base64")
    key_version: int


class _Valued(Targeted):
    value: Base64Text = Field(max_length=MAX_PLAINTEXT_B64, description="base64, at most 1 MiB")

    def item(self) -> Item:
        return Item(self.target(), decode_b64(self.value), decode_b64(self.context))


class MacIn(_Valued):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_EXAMPLE_TARGET, "value": "YWxpY2U="}]}
    )

    key_version: int | None = Field(
        default=None, ge=1, description="default: the active key version"
    )


class MacOut(BaseModel):
    mac: str = Field(description=f"base64 of {mac_format.MAC_SIZE} bytes (format v1)")
    key_version: int


class MacVerifyIn(_Valued):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_EXAMPLE_TARGET, "value": "YWxpY2U=", "mac": "AQM..."}]}
    )

    mac: Base64Text = Field(max_length=128, description="base64, as /crypto/mac returned it")


class MacVerifyOut(BaseModel):
    key_version: int = Field(description="the key version the MAC was made with")
