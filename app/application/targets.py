"""What a data-plane call names: a field (resolved through its configuration) or a module."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from app.domain.ciphertext import binding_for_field, binding_for_module
from app.domain.errors import InvalidInput
from app.domain.values import FieldRef, validate_module_name


@dataclass(frozen=True, slots=True)
class Target:
    """Exactly one of ``field`` or ``module``."""

    field: FieldRef | None = None
    module: str | None = None
    key: tuple[str, str, str] = dataclasses.field(init=False, repr=False, compare=False)
    """``(module, table, column)``, the absent parts empty: equal exactly when the targets
    are, and hashed in C (a dataclass's ``__hash__`` and ``__eq__`` are Python code), for the
    tables the data plane looks targets up in on every call."""

    def __post_init__(self) -> None:
        if (self.field is None) == (self.module is None):
            raise InvalidInput("name exactly one target: a field (table, column) or a module")
        if self.module is not None:
            validate_module_name(self.module)
            object.__setattr__(self, "key", (self.module, "", ""))
        elif self.field is not None:
            object.__setattr__(self, "key", ("", self.field.table, self.field.column))

    @classmethod
    def of(cls, *, table: str = "", column: str = "", module: str = "") -> Target:
        """Build from loose request fields (empty strings mean absent)."""
        if module and (table or column):
            raise InvalidInput("name either a field (table, column) or a module, not both")
        if module:
            return cls(module=module)
        if table or column:
            return cls(field=FieldRef(table, column))
        raise InvalidInput("name a target: a field (table, column) or a module")

    @property
    def binding(self) -> bytes:
        """The bytes that bind a ciphertext to its field or module (part of the AAD)."""
        if self.field is not None:
            return binding_for_field(self.field)
        return binding_for_module(str(self.module))

    def __str__(self) -> str:
        return f"field:{self.field}" if self.field is not None else f"module:{self.module}"
