"""Bodies of /crypto/encrypt and /crypto/decrypt: bytes as standard base64, ciphertexts in
the text form of format v1 (``ekms:v1:...``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Base64Text, InputModel, decode_b64
from app.application.crypto import Item
from app.application.targets import Target
from app.domain import ciphertext as ct


def _base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


# The domain's limits on a value and its context, as base64.
_MAX_PLAINTEXT_B64 = _base64_length(ct.MAX_PLAINTEXT)
_MAX_CONTEXT_B64 = _base64_length(ct.MAX_CONTEXT)


class _Targeted(InputModel):
    table: str | None = Field(default=None, max_length=63, description="with `column`: a field")
    column: str | None = Field(default=None, max_length=63)
    module: str | None = Field(default=None, max_length=255, description="or a module by name")
    context: Base64Text = Field(
        default="",
        max_length=_MAX_CONTEXT_B64,
        description="associated data (e.g. a record id); decrypt needs the same value",
    )

    def target(self) -> Target:
        return Target.of(table=self.table or "", column=self.column or "", module=self.module or "")


class EncryptIn(_Targeted):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "table": "employees",
                    "column": "iban",
                    "plaintext": "REU4OTM3MDQwMDQ0MDUzMjAxMzAwMA==",
                    "context": "ZW1wLTQy",
                }
            ]
        }
    )

    plaintext: Base64Text = Field(
        max_length=_MAX_PLAINTEXT_B64, description="base64, at most 1 MiB decoded"
    )

    def item(self) -> Item:
        return Item(self.target(), decode_b64(self.plaintext), decode_b64(self.context))


class EncryptOut(BaseModel):
    ciphertext: str = Field(examples=["ekms:v1:AQE..."])
    key_version: int


class DecryptIn(_Targeted):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "table": "employees",
                    "column": "iban",
                    "ciphertext": "ekms:v1:AQE...",
                    "context": "ZW1wLTQy",
                }
            ]
        }
    )

    ciphertext: str = Field(max_length=2 * _MAX_PLAINTEXT_B64, description="`ekms:v1:` text form")

    def item(self) -> Item:
        """``DecryptionFailed`` for a ciphertext that is not the canonical text form."""
        return Item(self.target(), ct.from_text(self.ciphertext), decode_b64(self.context))


class DecryptOut(BaseModel):
    plaintext: str = Field(description="base64")
    key_version: int
