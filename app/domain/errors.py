"""The one error tree of ekms.

    EkmsError                      every error the service raises on purpose
    ├── Unauthenticated            no token, or a token that does not verify
    ├── Forbidden                  an admin route without the needed role
    ├── InvalidInput               malformed request data
    ├── DecryptionFailed           opaque: any ciphertext that does not verify
    ├── MacMismatch                opaque: a blind-index MAC that does not verify
    ├── NotFound                   unknown module, field config, key version, policy, config
    ├── Conflict                   duplicate, immutable field, illegal lifecycle transition,
    │   │                          concurrent update
    │   └── AlreadyExists          a second configuration, a duplicate name
    ├── AccessDenied               a module access policy rejected (MAP_REJECTED), or wants
    │                              a justification the call lacks (JUSTIFICATION_REQUIRED)
    ├── KeyUnavailable             the key chain cannot serve this (external key disabled,
    │                              pending deletion, deleted, access refused, unavailable
    │                              past grace; key version suspended/revoked/destroyed; not
    │                              configured; KEY_USAGE_LIMIT_REACHED: a GCM key version has
    │                              used its 2^32 encryptions, rotate the module key)
    ├── ResourceExhausted          a caller's limit: requests per second (RATE_LIMITED) or
    │                              concurrent streams (TOO_MANY_STREAMS); ``retry_after``
    └── ServiceUnavailable         transient: KMS or database out of reach, throttled; in strict
                                   audit mode, a data-plane event that could not be written

Every error carries a stable machine-readable ``reason`` (``Reason``) and a message that is safe
to show a caller: messages never contain key material, tokens or plaintext, nor raw control
characters (a caller's name quoted in a message has them escaped, ``\\n``, ``\\x00``).

Each inbound adapter answers these with its own codes, from one table each: HTTP in
``app/api/errors.py`` (``STATUS_BY_ERROR``), gRPC in ``app/grpc/errors.py`` (``STATUS_CODES``).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    DECRYPTION_FAILED = "DECRYPTION_FAILED"
    MAC_MISMATCH = "MAC_MISMATCH"
    NOT_FOUND = "NOT_FOUND"
    MODULE_NOT_FOUND = "MODULE_NOT_FOUND"
    FIELD_CONFIG_NOT_FOUND = "FIELD_CONFIG_NOT_FOUND"
    KEY_VERSION_NOT_FOUND = "KEY_VERSION_NOT_FOUND"
    POLICY_NOT_FOUND = "POLICY_NOT_FOUND"
    NOT_CONFIGURED = "NOT_CONFIGURED"
    EXTERNAL_KEY_NOT_FOUND = "EXTERNAL_KEY_NOT_FOUND"
    EXTERNAL_KEY_EXISTS = "EXTERNAL_KEY_EXISTS"
    LAST_EXTERNAL_KEY = "LAST_EXTERNAL_KEY"
    EXTERNAL_KEY_NOT_DELETED = "EXTERNAL_KEY_NOT_DELETED"  # the configuration cannot end yet
    CONFLICT = "CONFLICT"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    ALREADY_CONFIGURED = "ALREADY_CONFIGURED"
    IMMUTABLE_FIELD = "IMMUTABLE_FIELD"
    INVALID_KEY_TRANSITION = "INVALID_KEY_TRANSITION"
    CONCURRENT_UPDATE = "CONCURRENT_UPDATE"
    MODULE_NOT_PUBLISHED = "MODULE_NOT_PUBLISHED"
    FIELD_CONFIG_INACTIVE = "FIELD_CONFIG_INACTIVE"
    MAP_REJECTED = "MAP_REJECTED"
    JUSTIFICATION_REQUIRED = "JUSTIFICATION_REQUIRED"  # a policy needs a justification (code)
    JUSTIFICATION_INVALID = "JUSTIFICATION_INVALID"  # x-ekms-justification is malformed
    UNAUTHENTICATED = "UNAUTHENTICATED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 - a reason code, not a secret
    ROLE_REQUIRED = "ROLE_REQUIRED"
    EXTERNAL_KEY_DISABLED = "EXTERNAL_KEY_DISABLED"
    EXTERNAL_KEY_PENDING_DELETION = "EXTERNAL_KEY_PENDING_DELETION"
    EXTERNAL_KEY_DELETED = "EXTERNAL_KEY_DELETED"
    EXTERNAL_KEY_UNAVAILABLE = "EXTERNAL_KEY_UNAVAILABLE"
    EXTERNAL_KEY_ACCESS_DENIED = "EXTERNAL_KEY_ACCESS_DENIED"
    EXTERNAL_KEY_UNWRAP_FAILED = "EXTERNAL_KEY_UNWRAP_FAILED"
    KEY_VERSION_SUSPENDED = "KEY_VERSION_SUSPENDED"
    KEY_VERSION_REVOKED = "KEY_VERSION_REVOKED"
    KEY_VERSION_DESTROYED = "KEY_VERSION_DESTROYED"
    KEY_VERSION_LOST = "KEY_VERSION_LOST"  # its configuration ended with every external key
    LOCAL_KEK_UNAVAILABLE = "LOCAL_KEK_UNAVAILABLE"  # external_wrap=false: local root key refused
    NO_ACTIVE_KEY = "NO_ACTIVE_KEY"
    KMS_UNAVAILABLE = "KMS_UNAVAILABLE"
    KMS_THROTTLED = "KMS_THROTTLED"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"  # strict audit mode: the event could not be written
    KEY_USAGE_LIMIT_REACHED = "KEY_USAGE_LIMIT_REACHED"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_STREAMS = "TOO_MANY_STREAMS"


def escape_controls(text: str) -> str:
    """``text`` with every non-printable character escaped as ``repr`` would (``\\n``,
    ``\\x1b``, ``\\u2028``), so a caller's input quoted back cannot forge log lines or
    terminal output."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class EkmsError(Exception):
    """Base of every deliberate ekms error. ``str(err)`` is safe to show a caller."""

    default_reason: Reason = Reason.INVALID_INPUT

    def __init__(self, message: str, *, reason: Reason | None = None) -> None:
        message = escape_controls(message)
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason.value!r}, message={self.message!r})"


class Unauthenticated(EkmsError):
    """Deliberately vague: says the token was refused, not which check failed in detail."""

    default_reason = Reason.UNAUTHENTICATED


class Forbidden(EkmsError):
    default_reason = Reason.ROLE_REQUIRED


class InvalidInput(EkmsError):
    default_reason = Reason.INVALID_INPUT

    def __init__(self, message: str, *, field: str | None = None, reason: Reason | None = None):
        super().__init__(message, reason=reason)
        self.field = field


class DecryptionFailed(EkmsError):
    """The one opaque error for a ciphertext that cannot be decrypted.

    It does not say why (tampered, wrong field, wrong context, truncated): telling would give
    an attacker an oracle.
    """

    default_reason = Reason.DECRYPTION_FAILED

    def __init__(self) -> None:
        super().__init__("ciphertext could not be decrypted")


class MacMismatch(EkmsError):
    """The one opaque error for a MAC that does not verify (wrong value, context, target or
    version, tampered or truncated): answered like ``DecryptionFailed``, with its own reason."""

    default_reason = Reason.MAC_MISMATCH

    def __init__(self, message: str = "the MAC does not verify") -> None:
        super().__init__(message)


class NotFound(EkmsError):
    default_reason = Reason.NOT_FOUND


class Conflict(EkmsError):
    default_reason = Reason.CONFLICT


class AlreadyExists(Conflict):
    default_reason = Reason.ALREADY_EXISTS


class AccessDenied(EkmsError):
    default_reason = Reason.MAP_REJECTED


class KeyUnavailable(EkmsError):
    default_reason = Reason.EXTERNAL_KEY_UNAVAILABLE


class ResourceExhausted(EkmsError):
    """The caller went past one of its limits; nothing was done.

    ``retry_after`` is the number of seconds after which the same call would be admitted, when
    that is known (a rate limit), else ``None`` (a stream cap: it depends on other streams).
    """

    default_reason = Reason.RATE_LIMITED

    def __init__(
        self, message: str, *, reason: Reason | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class ServiceUnavailable(EkmsError):
    default_reason = Reason.KMS_UNAVAILABLE
