"""Crypto modules and their versioned data encryption keys (DEKs)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.domain.errors import Conflict, InvalidInput, KeyUnavailable, Reason
from app.domain.values import AccessResult, Algorithm, KeyState, ModuleState, validate_module_name

# Random 96-bit GCM nonces: NIST SP 800-38D caps one key at 2**32 invocations. The encrypt
# path refuses past it (``app.application.budget``); AES-SIV has no nonce and no such limit.
GCM_SAFE_LIMIT = 2**32
NONCE_WARN_AT = GCM_SAFE_LIMIT // 2  # warn and open an alert
NONCE_ROTATE_AT = GCM_SAFE_LIMIT - GCM_SAFE_LIMIT // 8  # rotate, leaving 12.5% headroom
KEY_USAGE_ALERT = "key_usage"  # alert kinds: "key_usage:<module id>:<version>"
STATE_REASON_MAX = 500


def validate_state_reason(reason: str | None, *, required: bool) -> str | None:
    """The reason given with a lifecycle action, trimmed: 1-500 printable characters on one
    line; ``None`` (no reason) only when the action does not require one."""
    if reason is None:
        if required:
            raise InvalidInput("a reason is required for this action", field="reason")
        return None
    reason = reason.strip()
    if not reason:
        raise InvalidInput("reason must not be blank", field="reason")
    if len(reason) > STATE_REASON_MAX:
        raise InvalidInput(f"reason is at most {STATE_REASON_MAX} characters", field="reason")
    if not reason.isprintable():
        raise InvalidInput("reason must be printable text on one line", field="reason")
    return reason


def key_usage_alert_kind(module_id: uuid.UUID, version: int) -> str:
    """The kind of the alert open while a GCM key version is near (or at) its limit."""
    return f"{KEY_USAGE_ALERT}:{module_id}:{version}"


def parse_key_usage_alert_kind(kind: str) -> tuple[uuid.UUID, int] | None:
    """The (module id, version) a key-usage alert kind names; ``None`` for other kinds."""
    prefix, _, rest = kind.partition(":")
    module_id, _, version = rest.partition(":")
    if prefix != KEY_USAGE_ALERT or not version.isdigit():
        return None
    try:
        return uuid.UUID(module_id), int(version)
    except ValueError:
        return None


@dataclass(slots=True)
class CryptoModule:
    """A named scope of encryption with its own keys and access policies."""

    id: uuid.UUID
    name: str
    algorithm: Algorithm
    created_at: datetime
    updated_at: datetime
    external_wrap: bool = True
    default_access: AccessResult = AccessResult.REJECT
    state: ModuleState = ModuleState.PUBLISHED
    description: str = ""
    # Lifecycle automation (None: off). Rotate the Active DEK after this long; destroy
    # Deactivated versions this long after their deactivation.
    rotation_period: timedelta | None = None
    destroy_deactivated_after: timedelta | None = None
    revision: int = 0

    def __post_init__(self) -> None:
        validate_module_name(self.name)
        for name in ("rotation_period", "destroy_deactivated_after"):
            value = getattr(self, name)
            if value is not None and value < timedelta(hours=1):
                raise InvalidInput(f"{name} must be at least one hour", field=name)
        if len(self.description) > 1024:
            raise InvalidInput("description is at most 1024 characters", field="description")

    def update(
        self,
        now: datetime,
        *,
        description: str | None = None,
        default_access: AccessResult | None = None,
        state: ModuleState | None = None,
        automation: dict[str, timedelta | None] | None = None,
    ) -> None:
        for name, period in (automation or {}).items():
            if name not in ("rotation_period", "destroy_deactivated_after"):
                raise InvalidInput(f"{name} is not a lifecycle setting", field=name)
            if period is not None and period < timedelta(hours=1):
                raise InvalidInput(f"{name} must be at least one hour", field=name)
        if state is ModuleState.DRAFT and self.state is ModuleState.PUBLISHED:
            raise Conflict(
                "a published module cannot go back to draft",
                reason=Reason.INVALID_KEY_TRANSITION,
            )
        if description is not None:
            if len(description) > 1024:
                raise InvalidInput("description is at most 1024 characters", field="description")
            self.description = description
        if default_access is not None:
            self.default_access = default_access
        if state is not None:
            self.state = state
        for name, period in (automation or {}).items():
            setattr(self, name, period)
        self.updated_at = now


@dataclass(slots=True)
class ModuleKey:
    """One DEK version of a module. Holds the DEK only wrapped under the KEK ``kek_id``.

    Lifecycle (``from -> to: by``)::

        ACTIVE                 -> DEACTIVATED   rotation (a newer version became Active)
        ACTIVE, DEACTIVATED    -> SUSPENDED     suspend
        SUSPENDED              -> ACTIVE        resume, if it was Active and no other version is
        SUSPENDED              -> DEACTIVATED   resume, otherwise
        ACTIVE, DEACTIVATED,
        SUSPENDED              -> REVOKED       revoke
        DEACTIVATED, SUSPENDED,
        REVOKED                -> DESTROYED     destroy (wrapped material erased; final)

    ACTIVE encrypts and decrypts; DEACTIVATED and REVOKED decrypt only; SUSPENDED and
    DESTROYED do neither. ``state_reason`` is the reason given with the action that put the
    version in its current state (revoke requires one), ``None`` when that action had none.
    """

    module_id: uuid.UUID
    version: int
    wrapped_dek: bytes | None = field(repr=False)
    kek_id: uuid.UUID | None
    state: KeyState
    created_at: datetime
    activated_at: datetime | None = None
    deactivated_at: datetime | None = None
    suspended_from: KeyState | None = None
    state_changed_at: datetime | None = None
    destroyed_at: datetime | None = None
    state_reason: str | None = None
    lost_at: datetime | None = None  # destroyed because its configuration ended
    # Wrapped under the instance's local KEK (``kek_id`` names it; ``app/domain/local_kek``),
    # not the external chain's: its module has ``external_wrap=false``.
    local_wrap: bool = False
    # ``encryption_count``: encryptions performed, as written by the audit flush.
    # ``encryptions_reserved``: the blocks replicas reserved before encrypting; an upper bound
    # of what was performed (a crash loses the unspent rest of a block, never reuses it).
    encryption_count: int = 0
    encryptions_reserved: int = 0
    revision: int = 0

    # --- what the state allows -----------------------------------------------------------

    def ensure_can_encrypt(self) -> None:
        if self.state is not KeyState.ACTIVE:
            raise _unusable(self)

    def ensure_can_decrypt(self) -> None:
        if self.state not in (KeyState.ACTIVE, KeyState.DEACTIVATED, KeyState.REVOKED):
            raise _unusable(self)

    # --- transitions -------------------------------------------------------------------

    def deactivate(self, now: datetime) -> None:
        self._require({KeyState.ACTIVE}, "deactivate")
        self._move(KeyState.DEACTIVATED, now)
        self.deactivated_at = now

    def suspend(self, now: datetime, reason: str | None = None) -> None:
        self._require({KeyState.ACTIVE, KeyState.DEACTIVATED}, "suspend")
        reason = validate_state_reason(reason, required=False)
        self.suspended_from = self.state
        self._move(KeyState.SUSPENDED, now, reason)

    def resume(self, now: datetime, *, other_active: bool, reason: str | None = None) -> None:
        self._require({KeyState.SUSPENDED}, "resume")
        reason = validate_state_reason(reason, required=False)
        back = self.suspended_from or KeyState.DEACTIVATED
        if back is KeyState.ACTIVE and other_active:
            back = KeyState.DEACTIVATED
            self.deactivated_at = now
        self.suspended_from = None
        self._move(back, now, reason)

    def revoke(self, now: datetime, reason: str | None = None) -> None:
        """Revoke, with the reason an auditor will ask for: ``None`` is ``InvalidInput``."""
        self._require({KeyState.ACTIVE, KeyState.DEACTIVATED, KeyState.SUSPENDED}, "revoke")
        checked = validate_state_reason(reason, required=True)
        self.suspended_from = None
        self._move(KeyState.REVOKED, now, checked)

    def destroy(self, now: datetime, reason: str | None = None) -> None:
        self._require(
            {KeyState.DEACTIVATED, KeyState.SUSPENDED, KeyState.REVOKED},
            "destroy",
            hint="rotate the module first: the active version cannot be destroyed",
        )
        reason = validate_state_reason(reason, required=False)
        self.destroy_material(now)
        self._move(KeyState.DESTROYED, now, reason)

    def lose(self, now: datetime) -> None:
        """Its configuration ended (every external key deleted): the material is gone for good,
        whatever the state; the version reads as destroyed, and answers ``KEY_VERSION_LOST``."""
        if self.state is KeyState.DESTROYED:
            return
        self.destroy_material(now)
        self.lost_at = now
        self._move(KeyState.DESTROYED, now, "lost: its configuration ended")

    def destroy_material(self, now: datetime) -> None:
        """Erase the wrapped material (destroy and lose share it)."""
        self.suspended_from = None
        self.wrapped_dek = None
        self.kek_id = None
        self.local_wrap = False
        self.destroyed_at = now

    def _require(self, allowed: set[KeyState], action: str, hint: str = "") -> None:
        if self.state not in allowed:
            suffix = f"; {hint}" if hint and self.state is KeyState.ACTIVE else ""
            raise Conflict(
                f"key version {self.version} is {self.state.value} and cannot {action}{suffix}",
                reason=Reason.INVALID_KEY_TRANSITION,
            )

    def _move(self, state: KeyState, now: datetime, reason: str | None = None) -> None:
        self.state = state
        self.state_changed_at = now
        self.state_reason = reason
        if state is KeyState.ACTIVE and self.activated_at is None:
            self.activated_at = now

    @property
    def usage_mark(self) -> int:
        """What the nonce budget counts as used: the larger of performed and reserved."""
        return max(self.encryption_count, self.encryptions_reserved)

    @property
    def near_nonce_limit(self) -> bool:
        return self.usage_mark >= NONCE_WARN_AT

    @property
    def due_for_nonce_rotation(self) -> bool:
        return self.usage_mark >= NONCE_ROTATE_AT


_UNUSABLE_REASON = {
    KeyState.SUSPENDED: Reason.KEY_VERSION_SUSPENDED,
    KeyState.REVOKED: Reason.KEY_VERSION_REVOKED,
    KeyState.DESTROYED: Reason.KEY_VERSION_DESTROYED,
    KeyState.DEACTIVATED: Reason.NO_ACTIVE_KEY,
}


def _unusable(key: ModuleKey) -> KeyUnavailable:
    return KeyUnavailable(
        f"key version {key.version} is {key.state.value}",
        reason=Reason.KEY_VERSION_LOST
        if key.lost_at is not None
        else _UNUSABLE_REASON.get(key.state, Reason.NO_ACTIVE_KEY),
    )


@dataclass(slots=True)
class EncryptedFieldConfig:
    """Binds ``table.column`` to the module that encrypts it."""

    id: uuid.UUID
    table: str
    column: str
    module_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    active: bool = True
    revision: int = 0
