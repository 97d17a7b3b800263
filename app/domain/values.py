"""Value objects and enumerations shared by the key chain and the access policies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from app.domain.errors import InvalidInput
from app.domain.justification import Justification


class KmsProvider(StrEnum):
    LOCAL = "local"
    AWS = "aws"
    PKCS11 = "pkcs11"
    KMIP = "kmip"


class ExternalKeyStatus(StrEnum):
    """The external (customer) key's state as ekms last saw it."""

    UNKNOWN = "unknown"
    ENABLED = "enabled"
    DISABLED = "disabled"
    PENDING_DELETION = "pending_deletion"
    DELETED = "deleted"
    UNAVAILABLE = "unavailable"

    @property
    def usable(self) -> bool:
        """Whether the chain may serve. UNAVAILABLE is decided with a grace period elsewhere."""
        return self in (ExternalKeyStatus.ENABLED, ExternalKeyStatus.UNKNOWN)


class RevocationPolicy(StrEnum):
    """When several external keys wrap the KEK: who may stop the chain."""

    ANY = "any"  # any key disabled, pending deletion or deleted stops the chain
    ALL = "all"  # the chain serves while at least one key is enabled


class Algorithm(IntEnum):
    """Field cipher. The integer is the algorithm byte of ciphertext format v1."""

    AES_256_GCM = 1
    AES_256_SIV = 2

    @property
    def label(self) -> str:
        return _ALGORITHM_LABELS[self]

    @classmethod
    def from_label(cls, label: str) -> Algorithm:
        for alg, name in _ALGORITHM_LABELS.items():
            if name == label:
                return alg
        raise InvalidInput(f"unknown algorithm {label!r}", field="algorithm")

    @property
    def deterministic(self) -> bool:
        return self is Algorithm.AES_256_SIV


_ALGORITHM_LABELS = {Algorithm.AES_256_GCM: "AES-256-GCM", Algorithm.AES_256_SIV: "AES-256-SIV"}


class ModuleState(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class KeyState(StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    DESTROYED = "destroyed"


class Operation(StrEnum):
    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"
    REWRAP = "rewrap"
    MAC = "mac"


class AccessResult(StrEnum):
    TRACK = "track"
    REJECT = "reject"
    STRICT_REJECT = "strict_reject"


class TargetType(StrEnum):
    ROLE = "role"
    SUBJECT = "subject"


# Matched with ``fullmatch`` only: ``re.match`` with ``$`` accepts a trailing "\n".
_NAME_PART = r"[a-z0-9][a-z0-9_-]{0,62}"
_MODULE_NAME = re.compile(rf"{_NAME_PART}(\.{_NAME_PART}){{1,3}}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def validate_module_name(name: str) -> str:
    """A scoped, lower-case dotted name such as ``global.payroll``."""
    if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
        raise InvalidInput(
            "module name must be scoped and lower-case, like 'global.payroll' "
            "(2-4 dot-separated parts of [a-z0-9_-], each at most 63 characters)",
            field="name",
        )
    return name


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A ``table.column`` that holds encrypted values."""

    table: str
    column: str

    def __post_init__(self) -> None:
        for part, value in (("table", self.table), ("column", self.column)):
            if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
                raise InvalidInput(
                    f"{part} must be an SQL identifier of at most 63 characters", field=part
                )

    def __str__(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the token's subject and roles, and the call's justification if it sent
    one (part of the caller: the policies may ask for it, the audit records it)."""

    subject: str
    roles: frozenset[str] = frozenset()
    justification: Justification | None = None

    @property
    def audit_extra(self) -> tuple[tuple[str, str], ...]:
        """What the audit records of this caller beyond its subject: the justification."""
        justification = self.justification
        return () if justification is None else justification.audit_extra

    @property
    def cache_key(self) -> tuple[str, frozenset[str]]:
        return (self.subject, self.roles)


RESERVED_SUBJECT_PREFIX = "system:"
"""Subjects ekms uses for its own actors; the token verifier refuses tokens that claim one."""

SYSTEM = Caller(subject=f"{RESERVED_SUBJECT_PREFIX}ekms", roles=frozenset({"ekms.system"}))
