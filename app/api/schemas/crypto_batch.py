"""Bodies of /crypto/encrypt-batch, /crypto/decrypt-batch and /crypto/rewrap-batch.

A batch names a default target (``table``/``column`` or ``module``, optional) and its items;
an item names its own target or uses the default. One result per item, in item order, with
the item's ``id``; a failed item carries its problem (the same ``type``/``reason`` the single
route would answer) and no data. At most ``EKMS_MAX_BATCH_ITEMS`` items, as over gRPC.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.api.problems import Problem
from app.api.schemas.common import Base64Text, decode_b64
from app.api.schemas.crypto import MAX_CONTEXT_B64, MAX_PLAINTEXT_B64, TargetFields
from app.application.crypto import Item
from app.application.targets import Target
from app.domain import ciphertext as ct
from app.domain.errors import InvalidInput

_CIPHERTEXT_TEXT = 2 * MAX_PLAINTEXT_B64


class BatchItem(TargetFields):
    """One item of a batch: its own target or none (the batch's default), and its context."""

    id: str = Field(default="", max_length=256, description="caller-chosen, echoed in the result")
    context: Base64Text = Field(default="", max_length=MAX_CONTEXT_B64)

    def item(self, default: Target | None) -> Item:
        """The use case's item; ``InvalidInput``/``DecryptionFailed`` are this item's error."""
        return Item(*self.parts(default))

    def parts(self, default: Target | None) -> tuple[Target, bytes, bytes]:
        """The item as (target, data, context), checked in that order; an ``EkmsError``
        (``InvalidInput``/``DecryptionFailed``) is this item's error."""
        target = self.target_if_named() or default
        if target is None:
            raise InvalidInput(
                "name a target on the item or a default target on the batch", field="target"
            )
        return target, self.data(), decode_b64(self.context)

    def data(self) -> bytes:
        raise NotImplementedError


class EncryptBatchItem(BatchItem):
    plaintext: Base64Text = Field(max_length=MAX_PLAINTEXT_B64, description="base64")

    def data(self) -> bytes:
        return decode_b64(self.plaintext)


class CiphertextBatchItem(BatchItem):
    ciphertext: str = Field(max_length=_CIPHERTEXT_TEXT, description="`ekms:v1:` text form")

    def data(self) -> bytes:
        return ct.from_text(self.ciphertext)


class _Batch(TargetFields):
    def default_target(self) -> Target | None:
        return self.target_if_named()


class EncryptBatchIn(_Batch):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "table": "employees",
                    "column": "iban",
                    "items": [{"id": "42", "plaintext": "REU4OQ==", "context": "ZW1wLTQy"}],
                }
            ]
        }
    )

    items: list[EncryptBatchItem]


class CiphertextBatchIn(_Batch):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "module": "global.payroll",
                    "items": [{"id": "42", "ciphertext": "ekms:v1:AQE...", "context": "ZW1wLTQy"}],
                }
            ]
        }
    )

    items: list[CiphertextBatchItem]


class _Result(BaseModel):
    id: str
    key_version: int | None = None
    error: Problem | None = Field(default=None, description="set when the item failed")


class EncryptBatchResult(_Result):
    ciphertext: str | None = None


class DecryptBatchResult(_Result):
    plaintext: str | None = Field(default=None, description="base64")


class RewrapBatchResult(_Result):
    ciphertext: str | None = None
    changed: bool | None = None


class EncryptBatchOut(BaseModel):
    results: list[EncryptBatchResult]


class DecryptBatchOut(BaseModel):
    results: list[DecryptBatchResult]


class RewrapBatchOut(BaseModel):
    results: list[RewrapBatchResult]
