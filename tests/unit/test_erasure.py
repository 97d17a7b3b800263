"""Destroy means gone (issue 10, finding 4), in the use cases: KEK rotation deletes the retired
EKEK rows, and both it and destroy ask the database to erase the superseded row versions."""

from __future__ import annotations

from structlog.testing import capture_logs

from app.application.kek import rotate_kek
from app.application.modules import KeyAction, change_key_state, rotate_module_key
from app.application.ports import KeyStore
from app.domain.values import KeyState
from tests.unit.conftest import ADMIN, World

MODULE = "global.payroll"


async def test_kek_rotation_deletes_every_retired_ekek_in_its_transaction(ready: World) -> None:
    first = await rotate_kek(ready.ctx, ADMIN)
    second = await rotate_kek(ready.ctx, ADMIN)
    assert list(map(str, ready.db.committed.instance_keys)) == [second.new_kek_id]
    event = next(e for e in reversed(ready.db.committed.audit) if e.action == "kek.rotate")
    assert event.details["deleted_kek_ids"] == [first.new_kek_id]
    assert ready.db.erased[-1] == (KeyStore.INSTANCE_KEYS, KeyStore.MODULE_KEYS)


async def test_destroy_erases_dead_rows_and_other_actions_do_not(ready: World) -> None:
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.SUSPEND)
    assert ready.db.erased == []
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.DESTROY)
    assert ready.db.erased == [(KeyStore.MODULE_KEYS,)]


async def test_a_failed_erase_is_logged_and_the_destroy_stays_done(ready: World) -> None:
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    ready.db.erase_fails = True
    with capture_logs() as logs:
        key = await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.DESTROY)
    assert key.state is KeyState.DESTROYED
    stored = next(k for k in ready.db.committed.keys.values() if k.version == 1)
    assert stored.state is KeyState.DESTROYED and stored.wrapped_dek is None
    failed = [e for e in logs if e["event"] == "dead_rows_not_erased"]
    assert failed and failed[0]["stores"] == ["module_keys"]
    assert failed[0]["reason"] == "DATABASE_UNAVAILABLE"
