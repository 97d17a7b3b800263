"""Finding 5: the GCM nonce budget is enforced on the encrypt path, whatever the scheduler does.

The scheduler never runs in these tests unless one says so: the refusals are the data path's.
"""

from __future__ import annotations

import uuid

import pytest

from app.application.budget import EncryptionBudget
from app.application.configuration import get_status
from app.application.crypto import CryptoService, Item, ItemColumns, ItemResult
from app.application.maintenance import automate_key_lifecycle, scheduler_caller
from app.application.modules import rotate_module_key
from app.application.targets import Target
from app.domain.errors import KeyUnavailable, Reason, ServiceUnavailable
from app.domain.module import GCM_SAFE_LIMIT, NONCE_WARN_AT, key_usage_alert_kind
from app.domain.values import Algorithm, Operation
from tests.unit.conftest import ADMIN, APP, World

MODULE = "global.payroll"
SEARCH = "global.search"
TARGET = Target(module=MODULE)


def _key(world: World, version: int = 1, module: str = MODULE) -> object:
    return next(
        k
        for k in world.db.committed.keys.values()
        if k.version == version and world.db.committed.modules[k.module_id].name == module
    )


def _set_used(world: World, count: int, module: str = MODULE) -> None:
    key = _key(world, module=module)
    key.encryption_count = count  # type: ignore[attr-defined]


def _service(world: World, *, block: int, limit: int = GCM_SAFE_LIMIT) -> CryptoService:
    """Another process: a fresh budget (no lease) on the same database."""
    ctx = world.ctx
    budget = EncryptionBudget(ctx.uow, ctx.clock, ctx.rng, ctx.changes, block=block, limit=limit)
    return CryptoService(ctx, budget=budget)


def _reasons(results: list[ItemResult]) -> list[str]:
    return ["ok" if r.error is None else r.error.reason.value for r in results]


async def test_the_finding_a_count_past_2_32_refuses_every_encrypt_and_writes_nothing(
    ready: World,
) -> None:
    _set_used(ready, 2**32 + 10)
    await ready.ctx.audit.flush()
    with pytest.raises(KeyUnavailable) as err:
        await ready.encrypt(b"one more")
    assert err.value.reason is Reason.KEY_USAGE_LIMIT_REACHED
    assert "rotate" in err.value.message
    results = await ready.crypto.encrypt_batch(APP, [Item(TARGET, b"x%d" % i) for i in range(1000)])
    assert set(_reasons(results)) == {"KEY_USAGE_LIMIT_REACHED"}
    assert all(r.data is None for r in results)
    await ready.ctx.audit.flush()
    key = _key(ready)
    assert key.encryption_count == 2**32 + 10  # type: ignore[attr-defined]
    assert key.encryptions_reserved == 0  # type: ignore[attr-defined]


async def test_just_below_the_limit_the_last_ones_succeed_then_encrypts_are_refused(
    ready: World,
) -> None:
    _set_used(ready, GCM_SAFE_LIMIT - 3)
    batch = await ready.crypto.encrypt_batch(APP, [Item(TARGET, b"v%d" % i) for i in range(5)])
    assert _reasons(batch) == ["ok"] * 3 + ["KEY_USAGE_LIMIT_REACHED"] * 2
    with pytest.raises(KeyUnavailable):
        await ready.encrypt(b"after")
    assert await ready.decrypt(batch[0].data or b"") == b"v0"  # decrypt is not limited
    await ready.ctx.audit.flush()
    key = _key(ready)
    assert key.encryptions_reserved == GCM_SAFE_LIMIT  # type: ignore[attr-defined]
    assert key.encryption_count == GCM_SAFE_LIMIT  # type: ignore[attr-defined]
    refused = [e for e in ready.db.committed.audit if e.reason == "KEY_USAGE_LIMIT_REACHED"]
    assert sum(e.count for e in refused) == 3


async def test_rotation_gives_a_fresh_budget(ready: World) -> None:
    _set_used(ready, GCM_SAFE_LIMIT)
    with pytest.raises(KeyUnavailable):
        await ready.encrypt(b"refused")
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    assert await ready.decrypt(await ready.encrypt(b"fresh")) == b"fresh"


async def test_aes_siv_has_no_nonce_budget(ready: World) -> None:
    await ready.module(SEARCH, Algorithm.AES_256_SIV)
    _set_used(ready, 2**32 + 10, module=SEARCH)
    blob = await ready.encrypt(b"deterministic", module=SEARCH)
    assert await ready.decrypt(blob, module=SEARCH) == b"deterministic"


async def test_no_query_per_encrypt_one_reservation_per_block(ready: World) -> None:
    crypto = _service(ready, block=100)
    await crypto.encrypt(APP, Item(TARGET, b"warm"))
    transactions = ready.db.transactions
    for i in range(99):
        await crypto.encrypt(APP, Item(TARGET, b"%d" % i))
    assert ready.db.transactions == transactions  # the block of 100 is spent in memory
    await crypto.encrypt(APP, Item(TARGET, b"the 101st"))
    assert ready.db.transactions == transactions + 1
    assert crypto.budget.reservations == 2


async def test_restarts_lose_reserved_budget_never_reuse_it(ready: World) -> None:
    performed = 0
    marks = []
    for _ in range(3):  # three process lifetimes, each killed after one encrypt
        crypto = _service(ready, block=4, limit=10)
        await crypto.encrypt(APP, Item(TARGET, b"x"))
        performed += 1
        marks.append(_key(ready).encryptions_reserved)  # type: ignore[attr-defined]
    assert marks == [4, 8, 10]  # counts only go up; the third got the 2 that were left
    crypto = _service(ready, block=4, limit=10)
    with pytest.raises(KeyUnavailable) as err:
        await crypto.encrypt(APP, Item(TARGET, b"x"))
    assert err.value.reason is Reason.KEY_USAGE_LIMIT_REACHED
    assert performed <= 10


async def test_while_the_database_is_away_encrypts_stop_when_the_lease_runs_out(
    ready: World,
) -> None:
    crypto = _service(ready, block=3)
    await crypto.encrypt(APP, Item(TARGET, b"reserves 3"))
    ready.db.down = True
    for _ in range(2):
        await crypto.encrypt(APP, Item(TARGET, b"from the lease"))
    with pytest.raises(ServiceUnavailable) as err:
        await crypto.encrypt(APP, Item(TARGET, b"nothing reserved"))
    assert err.value.reason is Reason.DATABASE_UNAVAILABLE
    ready.db.down = False
    ready.clock.advance(3)  # past the retry pause
    await crypto.encrypt(APP, Item(TARGET, b"reserves again"))


async def test_the_warning_mark_opens_an_alert_shown_by_status_and_closed_after_rotation(
    ready: World,
) -> None:
    _set_used(ready, NONCE_WARN_AT - 1)
    await ready.encrypt(b"crosses half the budget")
    status = await get_status(ready.ctx)
    key = _key(ready)
    kind = key_usage_alert_kind(key.module_id, 1)  # type: ignore[attr-defined]
    [alert] = [a for a in status.open_alerts if a.kind == kind]
    assert MODULE in alert.message and "50%" in alert.message
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    await automate_key_lifecycle(ready.ctx, scheduler_caller("a"))
    assert not [a for a in (await get_status(ready.ctx)).open_alerts if a.kind == kind]


async def test_the_scheduler_opens_the_alert_for_counts_it_finds(ready: World) -> None:
    _set_used(ready, NONCE_WARN_AT)
    await automate_key_lifecycle(ready.ctx, scheduler_caller("a"))
    kinds = {a.kind for a in ready.db.committed.alerts if a.closed_at is None}
    assert kinds == {key_usage_alert_kind(_key(ready).module_id, 1)}  # type: ignore[attr-defined]
    assert uuid.UUID(next(iter(kinds)).split(":")[1])


async def test_a_permits_lease_short_for_the_sum_of_its_runs_is_reserved_first(
    ready: World,
) -> None:
    """The per-call short-circuit (a permit that tells its lease) sums runs of equal targets
    that are different objects: each run alone fits what is left, the whole batch does not."""
    crypto = _service(ready, block=4)
    await crypto.encrypt(APP, Item(TARGET, b"warm"))  # the permit, and 3 nonces left
    targets = [Target(module=MODULE) for _ in range(4)]  # equal, not the same object
    results = await crypto.encrypt_batch(APP, [Item(t, b"v") for t in targets])
    assert _reasons(results) == ["ok"] * 4
    assert crypto.budget.reservations == 2
    columns = ItemColumns(targets, [b"w"] * 4, [b""] * 4)
    served = await crypto.run_columns(Operation.ENCRYPT, APP, columns, max_items=10)
    assert served.errors == {}
    assert all(served.data)
    assert crypto.budget.reservations == 3


async def test_a_warm_single_encrypt_within_the_lease_reserves_nothing(ready: World) -> None:
    crypto = _service(ready, block=3)
    for i in range(3):
        await crypto.encrypt(APP, Item(Target(module=MODULE), b"%d" % i))
    assert crypto.budget.reservations == 1
    await crypto.encrypt(APP, Item(TARGET, b"the 4th"))
    assert crypto.budget.reservations == 2
    await ready.ctx.audit.flush()
    key = _key(ready)
    assert key.encryption_count == 4  # type: ignore[attr-defined]
