"""Bodies of /field-configs."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import InputModel
from app.application.field_configs import FieldConfigInput
from app.domain.module import EncryptedFieldConfig

# pydantic-core runs patterns on Rust's regex engine, whose "$" is the end of the text only (not
# before a final "\n" as in Python's re): a name ending in "\n" is a 422, pinned by
# tests/e2e/test_rest_token_and_input_limits.py. The domain checks the same names with fullmatch.
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$"


class FieldConfigIn(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"table": "employees", "column": "iban", "module": "global.payroll"}]
        }
    )

    table: str = Field(pattern=IDENTIFIER_PATTERN, description="an SQL identifier")
    column: str = Field(pattern=IDENTIFIER_PATTERN, description="an SQL identifier")
    module: str = Field(min_length=1, max_length=255, description="the module that encrypts it")
    active: bool = Field(default=True, description="inactive fields still decrypt, never encrypt")

    def to_input(self) -> FieldConfigInput:
        return FieldConfigInput(
            table=self.table, column=self.column, module=self.module, active=self.active
        )


class FieldConfigPatch(InputModel):
    """Re-point the field at another module, or (de)activate it. Left-out fields are kept."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"active": False}]})

    module: str | None = Field(default=None, min_length=1, max_length=255)
    active: bool | None = None


class FieldConfigOut(BaseModel):
    id: uuid.UUID
    table: str
    column: str
    module_id: uuid.UUID
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, config: EncryptedFieldConfig) -> FieldConfigOut:
        return cls(
            id=config.id,
            table=config.table,
            column=config.column,
            module_id=config.module_id,
            active=config.active,
            created_at=config.created_at,
            updated_at=config.updated_at,
        )
