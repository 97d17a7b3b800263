"""Bodies of /crypto/encrypt, /crypto/decrypt and /crypto/rewrap: bytes as standard base64,
ciphertexts in the text form of format v1 (``ekms:v1:...``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Base64Text, InputModel, decode_b64
from app.application.crypto import Item
from app.application.targets import Target
from app.domain import ciphertext as ct


def _base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


# The domain's limits on a value and its context, as base64.
MAX_PLAINTEXT_B64 = _base64_length(ct.MAX_PLAINTEXT)
MAX_CONTEXT_B64 = _base64_length(ct.MAX_CONTEXT)


class TargetFields(InputModel):
    """A target: a field (``table`` and ``column``) or a module."""

    table: str | None = Field(default=None, max_length=63, description="with `column`: a field")
    column: str | None = Field(default=None, max_length=63)
    module: str | None = Field(default=None, max_length=255, description="or a module by name")

    def target(self) -> Target:
        return Target.of(table=self.table or "", column=self.column or "", module=self.module or "")

    def target_if_named(self) -> Target | None:
        """The target, or ``None`` when none is named (a batch item using the default)."""
        if self.table is None and self.column is None and self.module is None:
            return None
        return self.target()


class Targeted(TargetFields):
    """A target and the caller's context."""

    context: Base64Text = Field(
        default="",
        max_length=MAX_CONTEXT_B64,
        description="associated data (e.g. a record id); decrypt needs the same value",
    )


class EncryptIn(Targeted):
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
        max_length=MAX_PLAINTEXT_B64, description="base64, at most 1 MiB decoded"
    )

    def item(self) -> Item:
        return Item(self.target(), decode_b64(self.plaintext), decode_b64(self.context))


class EncryptOut(BaseModel):
    ciphertext: str = Field(examples=["ekms:v1:AQE..."])
    key_version: int


class DecryptIn(Targeted):
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

    ciphertext: str = Field(max_length=2 * MAX_PLAINTEXT_B64, description="`ekms:v1:` text form")

    def item(self) -> Item:
        """``DecryptionFailed`` for a ciphertext that is not the canonical text form."""
        return Item(self.target(), ct.from_text(self.ciphertext), decode_b64(self.context))


class DecryptOut(BaseModel):
    plaintext: str = Field(description="base64")
    key_version: int


class RewrapIn(DecryptIn):
    """A ciphertext to move to the active key version, with its target and context."""


class RewrapOut(BaseModel):
    ciphertext: str = Field(description="under the active key version; the input if it was")
    key_version: int
    changed: bool = Field(description="false when the input already was under the active version")
