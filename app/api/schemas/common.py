"""Shared pieces of the REST schemas."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

NUL = "\x00"


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, list | tuple | set | frozenset):
        return any(has_nul(item) for item in value)
    return False


class InputModel(BaseModel):
    """Request bodies refuse unknown fields, so a typo is a 422 rather than silently ignored,
    and NUL characters, which no text column can store (Postgres refuses them)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


class Base64Value(str):
    """A text ``Base64Text`` accepted, holding the bytes it decoded to: decoded once."""

    data: bytes


def _check_b64(value: str) -> str:
    """Strict standard base64 (RFC 4648 section 4, padding required)."""
    try:
        if len(value) % 4:
            raise ValueError
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise ValueError("must be standard base64 with padding") from None
    text = Base64Value(value)
    text.data = data
    return text


Base64Text = Annotated[str, AfterValidator(_check_b64)]


def decode_b64(value: str) -> bytes:
    """The bytes of a ``Base64Text`` field: those it decoded to when it was validated (a
    default, which pydantic does not validate, is decoded here)."""
    if isinstance(value, Base64Value):
        return value.data
    return base64.b64decode(value.encode("ascii"), validate=True)
