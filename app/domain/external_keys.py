"""Several external keys wrap one KEK: each key, what ekms last saw of it, and the rule that
says whether the chain may serve (the configuration's ``revocation_policy``).

Each key wraps the same KEK in an EKEK of its own. ``any`` lets each key holder stop the chain:
one key disabled, pending deletion, deleted or refusing is enough. ``all`` keeps the data
available while one key is usable (a second region, an escrow HSM). In both, keys that only
do not answer fail the chain closed when no usable key has been reachable for the grace period.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.ekms_config import (
    ExternalKmsConfig,
    copy_observed,
    is_refused,
)
from app.domain.errors import KeyUnavailable, Reason
from app.domain.values import ExternalKeyStatus, KmsProvider, RevocationPolicy

STOP_STATES = frozenset(
    {ExternalKeyStatus.DISABLED, ExternalKeyStatus.PENDING_DELETION, ExternalKeyStatus.DELETED}
)

_STATUS_REASON = {
    ExternalKeyStatus.DISABLED: Reason.EXTERNAL_KEY_DISABLED,
    ExternalKeyStatus.PENDING_DELETION: Reason.EXTERNAL_KEY_PENDING_DELETION,
    ExternalKeyStatus.DELETED: Reason.EXTERNAL_KEY_DELETED,
    ExternalKeyStatus.UNAVAILABLE: Reason.EXTERNAL_KEY_UNAVAILABLE,
}
_STATUS_DETAIL = {
    ExternalKeyStatus.DISABLED: "the external key is disabled",
    ExternalKeyStatus.PENDING_DELETION: "the external key is pending deletion",
    ExternalKeyStatus.DELETED: "the external key is deleted; a new configuration is needed",
    ExternalKeyStatus.UNAVAILABLE: "the external key has been unreachable past the grace period",
}


def unusable_error(status: ExternalKeyStatus) -> KeyUnavailable:
    """The error the data plane answers while the external key is in ``status``."""
    return KeyUnavailable(_STATUS_DETAIL[status], reason=_STATUS_REASON[status])


@dataclass(slots=True)
class ExternalKey:
    """One external key of the configuration. ``position`` orders them: the lowest is the
    first key, the one the flat ``provider``/``key_id``/``region`` of the configuration name."""

    id: uuid.UUID
    position: int
    provider: KmsProvider
    key_id: str
    region: str | None
    created_at: datetime
    external_key_status: ExternalKeyStatus = ExternalKeyStatus.UNKNOWN
    status_reason: str | None = None
    status_reason_code: Reason | None = None
    deletion_date: datetime | None = None
    last_sync_at: datetime | None = None
    unavailable_since: datetime | None = None
    revision: int = 0

    @classmethod
    def first_of(cls, config: ExternalKmsConfig, key_id: uuid.UUID, position: int) -> ExternalKey:
        """The configuration's first key, with the state the configuration holds for it."""
        key = cls(
            key_id, position, config.provider, config.key_id, config.region, config.created_at
        )
        copy_observed(key, config)
        return key

    @property
    def refused(self) -> bool:
        """UNAVAILABLE because the KMS said no: counts as a stop, with no grace period."""
        return is_refused(self)

    @property
    def stopped(self) -> bool:
        """Disabled, pending deletion, deleted, or refusing."""
        return self.external_key_status in STOP_STATES or self.refused

    def same_key(self, provider: KmsProvider, key_id: str, region: str | None) -> bool:
        """Whether this names the given provider key (adding it twice is refused)."""
        return (self.provider, self.key_id, self.region) == (provider, key_id, region)


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """Whether the chain may serve: ``error`` when it may not; else the keys that may unwrap
    the KEK, in order, and (when none of them answers) the moment it fails closed."""

    error: KeyUnavailable | None
    usable: tuple[ExternalKey, ...] = ()
    fail_closed_at: datetime | None = None


def chain_verdict(
    policy: RevocationPolicy, keys: Sequence[ExternalKey], grace: timedelta, now: datetime
) -> ChainVerdict:
    """Apply the revocation policy to what the syncs last saw of every key."""
    ordered = sorted(keys, key=lambda k: k.position)
    stopped = [k for k in ordered if k.stopped]
    if stopped and (policy is RevocationPolicy.ANY or len(stopped) == len(ordered)):
        return ChainVerdict(_stop_error(stopped[0]))
    usable = tuple(k for k in ordered if not k.stopped)
    if not usable:
        return ChainVerdict(KeyUnavailable("ekms is not configured", reason=Reason.NOT_CONFIGURED))
    answering = [k for k in usable if k.external_key_status is not ExternalKeyStatus.UNAVAILABLE]
    if answering:
        return ChainVerdict(None, usable)
    # Every usable key is unreachable: closed once none has answered for the grace period.
    last_answer = max(k.unavailable_since or now for k in usable)
    return ChainVerdict(None, usable, last_answer + grace)


def _stop_error(key: ExternalKey) -> KeyUnavailable:
    if key.refused:
        return KeyUnavailable(
            f"the external key refused ekms: {key.status_reason or 'access denied'}",
            reason=key.status_reason_code or Reason.EXTERNAL_KEY_ACCESS_DENIED,
        )
    return unusable_error(key.external_key_status)
