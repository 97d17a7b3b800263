"""Key version lifecycle rules, as methods of ModuleKey."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.domain.errors import Conflict, KeyUnavailable, Reason
from app.domain.module import ModuleKey
from app.domain.values import KeyState

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def key(state: KeyState = KeyState.ACTIVE) -> ModuleKey:
    return ModuleKey(uuid.uuid4(), 1, b"w" * 61, uuid.uuid4(), state, NOW)


def test_active_encrypts_and_decrypts() -> None:
    k = key()
    k.ensure_can_encrypt()
    k.ensure_can_decrypt()


@pytest.mark.parametrize("state", [KeyState.DEACTIVATED, KeyState.REVOKED])
def test_decrypt_only_states(state: KeyState) -> None:
    k = key(state)
    k.ensure_can_decrypt()
    with pytest.raises(KeyUnavailable):
        k.ensure_can_encrypt()


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (KeyState.SUSPENDED, Reason.KEY_VERSION_SUSPENDED),
        (KeyState.DESTROYED, Reason.KEY_VERSION_DESTROYED),
    ],
)
def test_unusable_states_refuse_both(state: KeyState, reason: Reason) -> None:
    k = key(state)
    for check in (k.ensure_can_encrypt, k.ensure_can_decrypt):
        with pytest.raises(KeyUnavailable) as err:
            check()
        assert err.value.reason is reason


def test_rotation_deactivates() -> None:
    k = key()
    k.deactivate(NOW)
    assert k.state is KeyState.DEACTIVATED and k.deactivated_at == NOW


def test_suspend_then_resume_returns_to_previous_state() -> None:
    k = key()
    k.suspend(NOW)
    assert k.state is KeyState.SUSPENDED
    k.resume(NOW, other_active=False)
    assert k.state is KeyState.ACTIVE


def test_resume_of_former_active_while_another_is_active_deactivates() -> None:
    k = key()
    k.suspend(NOW)
    k.resume(NOW, other_active=True)
    assert k.state is KeyState.DEACTIVATED


def test_revoke_from_suspended_and_no_resume_after() -> None:
    k = key()
    k.suspend(NOW)
    k.revoke(NOW, "compromised")
    assert k.state is KeyState.REVOKED
    with pytest.raises(Conflict) as err:
        k.resume(NOW, other_active=False)
    assert err.value.reason is Reason.INVALID_KEY_TRANSITION


def test_destroy_wipes_material_and_is_final() -> None:
    k = key(KeyState.DEACTIVATED)
    k.destroy(NOW)
    assert k.state is KeyState.DESTROYED
    assert k.wrapped_dek is None and k.kek_id is None and k.destroyed_at == NOW
    for action in (k.revoke, k.suspend, k.destroy):
        with pytest.raises(Conflict):
            action(NOW)


def test_active_cannot_be_destroyed() -> None:
    k = key()
    with pytest.raises(Conflict, match="rotate the module first"):
        k.destroy(NOW)
    assert k.state is KeyState.ACTIVE and k.wrapped_dek is not None


def test_repr_hides_wrapped_material() -> None:
    assert "www" not in repr(key())
