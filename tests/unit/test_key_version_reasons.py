"""The reason given with a key lifecycle action: required to revoke, optional otherwise, kept on
the version and in the audit; bad input changes nothing."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.application.modules import KeyAction, change_key_state, list_module_keys
from app.cli import cli
from app.domain.audit import AuditEvent
from app.domain.errors import InvalidInput
from app.domain.module import STATE_REASON_MAX
from app.domain.values import KeyState
from tests.unit.conftest import ADMIN, World

MODULE = "global.payroll"


async def _versions(world: World) -> dict[int, tuple[KeyState, str | None]]:
    return {k.version: (k.state, k.state_reason) for k in await list_module_keys(world.ctx, MODULE)}


def _events(world: World, action: str) -> list[AuditEvent]:
    return [e for e in world.db.committed.audit if e.action == action]


@pytest.mark.parametrize(
    "reason",
    [None, "", "   ", "x" * (STATE_REASON_MAX + 1), "two\nlines", "tab\there", "bell\x07"],
    ids=["missing", "empty", "blank", "too-long", "newline", "tab", "control"],
)
async def test_a_revoke_without_a_usable_reason_is_refused_and_changes_nothing(
    ready: World, reason: str | None
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.REVOKE, reason)
    assert refused.value.field == "reason"
    assert await _versions(ready) == {1: (KeyState.ACTIVE, None)}  # no replacement either
    assert _events(ready, "key.revoke") == []


async def test_a_revoke_keeps_its_reason_on_the_version_and_in_the_audit(ready: World) -> None:
    why = "  laptop with a cached token was stolen  "
    key = await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.REVOKE, why)
    assert key.state_reason == why.strip()
    assert await _versions(ready) == {
        1: (KeyState.REVOKED, why.strip()),
        2: (KeyState.ACTIVE, None),  # the replacement was not revoked
    }
    [event] = _events(ready, "key.revoke")
    assert event.details["reason"] == why.strip()
    assert event.actor == ADMIN.subject


async def test_a_reason_of_the_longest_allowed_length_is_kept_whole(ready: World) -> None:
    why = "é" * STATE_REASON_MAX
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.REVOKE, why)
    assert (await _versions(ready))[1] == (KeyState.REVOKED, why)


async def test_suspend_resume_and_destroy_take_a_reason_or_none(ready: World) -> None:
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.SUSPEND)
    assert await _versions(ready) == {1: (KeyState.SUSPENDED, None)}
    [suspended] = _events(ready, "key.suspend")
    assert suspended.details["reason"] is None

    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.RESUME, "false alarm")
    assert await _versions(ready) == {1: (KeyState.ACTIVE, "false alarm")}
    # The reason says why the version is in its current state: a later action replaces it.
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.SUSPEND, "incident 42")
    assert await _versions(ready) == {1: (KeyState.SUSPENDED, "incident 42")}
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.DESTROY, "incident 42 closed")
    assert await _versions(ready) == {1: (KeyState.DESTROYED, "incident 42 closed")}
    [destroyed] = _events(ready, "key.destroy")
    assert destroyed.details["reason"] == "incident 42 closed"


async def test_a_blank_optional_reason_is_refused_too(ready: World) -> None:
    with pytest.raises(InvalidInput):
        await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.SUSPEND, " ")
    assert await _versions(ready) == {1: (KeyState.ACTIVE, None)}
    assert _events(ready, "key.suspend") == []


def test_the_cli_revoke_asks_for_a_reason_before_calling_ekms() -> None:
    env = {"EKMS_URL": "http://127.0.0.1:1", "EKMS_TOKEN": None}  # nothing listens there
    result = CliRunner().invoke(cli, ["keys", "revoke", MODULE, "1", "--yes"], env=env)
    assert result.exit_code == 2 and "--reason" in result.output
    suspend = CliRunner().invoke(cli, ["keys", "suspend", "--help"])
    assert suspend.exit_code == 0 and "--reason" in suspend.output
