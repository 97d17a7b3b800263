"""The batch path close to the cipher (``CryptoService.run_columns``, ``dataplane.columns``) and
the data keys: every result, audit event and key-usage count is what the same items give one
by one on the item-by-item path (a fresh service per item: nothing remembered), for decrypt,
encrypt and rewrap batches that mix every kind of item, given as one target or per item."""

from __future__ import annotations

from collections import Counter

import pytest

from app.application.crypto import (
    ColumnResults,
    CryptoService,
    DataKeySpec,
    Item,
    ItemColumns,
    ItemResult,
)
from app.application.field_configs import FieldConfigInput, create_field_config
from app.application.limits import DataPlaneLimits, RateLimiter
from app.application.modules import ModuleInput, create_module, rotate_module_key
from app.application.sync import sync_external_key
from app.application.targets import Target
from app.domain.audit import AuditResult
from app.domain.errors import (
    DecryptionFailed,
    EkmsError,
    InvalidInput,
    Reason,
    ResourceExhausted,
)
from app.domain.values import Algorithm, Operation
from tests.unit.conftest import ADMIN, APP, World

MODULE = "global.payroll"
DENIED = "global.hr"  # no policy for APP: the default (Reject) decides
SALARY = Target.of(table="employees", column="salary")
LEGACY = Target.of(table="employees", column="legacy")  # inactive: decrypts, never encrypts
PAYROLL = Target(module=MODULE)
NO_TARGET = InvalidInput("name a target on the item or a default target", field="target")


async def _world(ready: World) -> None:
    await ready.module("global.siv", Algorithm.AES_256_SIV)
    await create_module(ready.ctx, ADMIN, ModuleInput(DENIED))
    await create_field_config(ready.ctx, ADMIN, FieldConfigInput("employees", "salary", MODULE))
    await create_field_config(
        ready.ctx, ADMIN, FieldConfigInput("employees", "legacy", MODULE, active=False)
    )


async def _audit(ready: World) -> Counter[tuple[object, ...]]:
    """The audit events written so far, as a multiset of (what, count); then forgets them."""
    await ready.ctx.audit.flush()
    events = Counter(
        {
            (e.actor, e.action, e.result, e.module, e.target, e.reason, str(e.details)): e.count
            for e in ready.db.committed.audit
        }
    )
    ready.db.committed.audit.clear()
    return events


def _usage(ready: World) -> dict[tuple[object, int], int]:
    return {(k.module_id, k.version): k.encryption_count for k in ready.db.committed.keys.values()}


def _results(columns: ColumnResults) -> list[ItemResult]:
    return [
        ItemResult(error=columns.errors[i])
        if data is None
        else ItemResult(data=data, key_version=columns.key_versions[i])
        for i, data in enumerate(columns.data)
    ]


def _columns(items: list[Item | EkmsError], one_target: bool) -> ItemColumns:
    data = [b"" if isinstance(i, EkmsError) else i.data for i in items]
    contexts = [b"" if isinstance(i, EkmsError) else i.context for i in items]
    if one_target:
        first = items[0]
        assert isinstance(first, Item) and all(
            isinstance(i, Item) and i.target is first.target for i in items
        )
        return ItemColumns(first.target, data, contexts)
    targets = [i if isinstance(i, EkmsError) else i.target for i in items]
    return ItemColumns(targets, data, contexts)


async def _one_by_one(
    ready: World, operation: Operation, items: list[Item | EkmsError]
) -> list[ItemResult]:
    """Each item alone through a fresh service: nothing remembered, the item-by-item path."""
    results = []
    for item in items:
        if isinstance(item, EkmsError):
            results.append(ItemResult(error=item))
            continue
        crypto = CryptoService(ready.ctx)
        results.append(
            (await crypto.run_batch(operation, APP, [item], lambda i: i, max_items=9))[0]
        )
    return results


async def _shape(
    ready: World, operation: Operation, item: Item | EkmsError, result: ItemResult
) -> tuple[object, ...]:
    """What must be equal: errors by kind, reason and message; a success by key version and
    by what it opens to (a GCM ciphertext differs from run to run)."""
    error = result.error
    if error is not None:
        return (type(error).__name__, error.reason, str(error))
    assert isinstance(item, Item) and result.data is not None
    if operation is Operation.DECRYPT:
        return ("ok", result.key_version, result.data)
    opened = await CryptoService(ready.ctx).decrypt(
        APP, Item(item.target, result.data, item.context)
    )
    return ("ok", result.key_version, result.data == item.data, opened.data)


async def _compare(
    ready: World, operation: Operation, items: list[Item | EkmsError], one_target: bool = False
) -> list[ItemResult]:
    """Run ``items`` as columns, then one by one; assert the same results, audit and usage."""
    await _audit(ready)
    usage = _usage(ready)
    columns = await ready.crypto.run_columns(
        operation, APP, _columns(items, one_target), max_items=100
    )
    got = _results(columns)
    batch_audit, batch_usage = await _audit(ready), _usage(ready)
    want = await _one_by_one(ready, operation, items)
    assert batch_audit == await _audit(ready)
    after = _usage(ready)
    assert {k: v - usage.get(k, 0) for k, v in batch_usage.items()} == {
        k: v - batch_usage.get(k, 0) for k, v in after.items()
    }
    shapes = [await _shape(ready, operation, i, r) for i, r in zip(items, got, strict=True)]
    assert shapes == [
        await _shape(ready, operation, i, r) for i, r in zip(items, want, strict=True)
    ]
    return got


async def _sealed(ready: World, target: Target, values: list[bytes]) -> list[bytes]:
    results = await ready.crypto.encrypt_batch(
        APP, [Item(target, v, b"row-%d" % i) for i, v in enumerate(values)]
    )
    return [r.data or b"" for r in results]


@pytest.mark.parametrize("one_target", [True, False], ids=["one-target", "per-item"])
async def test_a_decrypt_batch_of_one_target_matches_item_by_item(
    ready: World, one_target: bool
) -> None:
    await _world(ready)
    v1 = await _sealed(ready, SALARY, [b"v%d" % i for i in range(6)] + [b""])
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    v2 = await _sealed(ready, SALARY, [b"w0", b"w1"])
    items: list[Item | EkmsError] = [
        Item(SALARY, v1[0], b"row-0"),
        Item(SALARY, v1[1], b"row-1"),
        Item(SALARY, v2[0], b"row-0"),  # another header: key version 2
        Item(SALARY, v1[2], b"wrong context"),
        Item(SALARY, v1[3][:-1] + bytes([v1[3][-1] ^ 1]), b"row-3"),  # tampered tag
        Item(SALARY, v1[0][:30], b"row-0"),  # shorter than any body
        Item(SALARY, v1[0][:10], b"row-0"),  # shorter than the header
        Item(SALARY, v1[1], b"c" * 4097),  # oversized context
        Item(SALARY, v1[6], b"row-6"),  # an empty value
        Item(SALARY, v2[1], b"row-1"),
        Item(SALARY, v1[4], b"row-4"),
    ]
    got = await _compare(ready, Operation.DECRYPT, items, one_target)
    assert [r.data for r in got if r.error is None] == [b"v0", b"v1", b"w0", b"", b"w1", b"v4"]


async def test_a_decrypt_batch_of_many_targets_matches_item_by_item(ready: World) -> None:
    await _world(ready)
    salary = await _sealed(ready, SALARY, [b"s0", b"s1"])
    payroll = await _sealed(ready, PAYROLL, [b"p0", b"p1"])
    siv = await _sealed(ready, Target(module="global.siv"), [b"d0", b"d1"])
    items: list[Item | EkmsError] = [
        NO_TARGET,
        Item(SALARY, salary[0], b"row-0"),
        Item(SALARY, salary[1], b"row-1"),
        Item(PAYROLL, payroll[0], b"row-0"),
        Item(PAYROLL, salary[1], b"row-1"),  # another binding: does not verify
        Item(LEGACY, salary[0], b"row-0"),
        Item(Target(module=DENIED), payroll[0], b"row-0"),  # the header names another module
        Item(Target.of(table="employees", column="nope"), salary[0], b"row-0"),
        Item(Target(module="global.siv"), siv[0], b"row-0"),
        Item(Target(module="global.siv"), siv[1], b"row-1"),
        NO_TARGET,
        Item(PAYROLL, payroll[1], b"row-1"),
    ]
    got = await _compare(ready, Operation.DECRYPT, items)
    assert [r.data for r in got if r.error is None] == [b"s0", b"s1", b"p0", b"d0", b"d1", b"p1"]


@pytest.mark.parametrize("module", [MODULE, "global.siv"])
async def test_an_encrypt_batch_matches_item_by_item(ready: World, module: str) -> None:
    await _world(ready)
    own = Target(module=module)
    items: list[Item | EkmsError] = [
        Item(own, b"a", b"1"),
        Item(own, b"", b"2"),  # an empty value
        Item(own, b"x" * ((1 << 20) + 1), b"3"),  # oversized value
        Item(own, b"d", b"c" * 4097),  # oversized context
        Item(own, b"e", b"5"),
    ]
    await _compare(ready, Operation.ENCRYPT, items, one_target=True)
    items += [
        Item(SALARY, b"f", b"6"),
        Item(LEGACY, b"g", b"7"),  # inactive field configuration
        NO_TARGET,
        Item(Target(module="global.nope"), b"h", b"8"),
        Item(Target(module=DENIED), b"i", b"9"),
        Item(own, b"j", b"10"),
    ]
    got = await _compare(ready, Operation.ENCRYPT, items)
    assert sum(r.error is None for r in got) == 5


async def test_a_rewrap_batch_matches_item_by_item(ready: World) -> None:
    await _world(ready)
    old = await _sealed(ready, SALARY, [b"o%d" % i for i in range(4)])
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    new = await _sealed(ready, SALARY, [b"n0", b"n1"])
    items: list[Item | EkmsError] = [
        Item(SALARY, old[0], b"row-0"),  # moves to version 2
        Item(SALARY, old[1], b"row-1"),
        Item(SALARY, new[0], b"row-0"),  # already under the active version: unchanged
        Item(SALARY, old[2], b"wrong context"),
        Item(SALARY, old[3][:40], b"row-3"),  # truncated
        Item(SALARY, new[1], b"row-1"),
        Item(SALARY, old[3], b"row-3"),
    ]
    got = await _compare(ready, Operation.REWRAP, items, one_target=True)
    assert [r.key_version for r in got if r.error is None] == [2, 2, 2, 2, 2]
    assert got[2].data == new[0] and got[0].data != old[0]
    items += [
        NO_TARGET,
        Item(LEGACY, old[0], b"row-0"),  # another binding
        Item(Target(module=DENIED), old[0], b"row-0"),
        Item(SALARY, old[1], b"row-1"),
    ]
    await _compare(ready, Operation.REWRAP, items)


async def test_an_encrypt_batch_larger_than_the_lease_refuses_in_item_order(
    ready: World,
) -> None:
    """A lease that cannot cover the run: the items go one by one in order, so the same items
    are served and refused as one by one (an oversized one spends no nonce)."""
    await _world(ready)
    await ready.encrypt(b"warm-up")  # the version's lease exists and holds reservations
    view = (await ready.ctx.chain.snapshot()).module_named(MODULE)
    lease = ready.crypto.budget.lease_for(view)
    assert lease is not None
    lease.left, lease.exhausted = 3, True  # the whole budget is reserved: 3 encrypts are left
    items = [Item(PAYROLL, b"x" * ((1 << 20) + 1), b"0")] + [
        Item(PAYROLL, b"v%d" % i, b"%d" % i) for i in range(1, 6)
    ]
    columns = _columns(list(items), one_target=True)
    got = _results(await ready.crypto.run_columns(Operation.ENCRYPT, APP, columns, max_items=9))
    assert [type(r.error).__name__ if r.error else "ok" for r in got] == [
        "InvalidInput",
        "ok",
        "ok",
        "ok",
        "KeyUnavailable",
        "KeyUnavailable",
    ]
    assert lease.left == 0


async def test_data_keys_match_item_by_item(ready: World) -> None:
    """Generating and opening data keys rides on the shortcut like any value: the same key
    versions, audit and usage as a fresh service per call."""
    await _world(ready)
    await _audit(ready)
    usage = _usage(ready)
    crypto = ready.crypto
    pairs = [
        await crypto.generate_data_key(APP, SALARY, b"f%d" % i, DataKeySpec.AES_256)
        for i in range(3)
    ]
    pairs.append(await crypto.generate_data_key(APP, SALARY, b"f3", DataKeySpec.AES_128))
    opened = [
        await crypto.decrypt_data_key(APP, Item(SALARY, p.sealed.sealed_key, b"f%d" % i))
        for i, p in enumerate(pairs)
    ]
    not_a_key = await ready.encrypt(b"not a key")
    with pytest.raises(DecryptionFailed):
        await crypto.decrypt_data_key(APP, Item(PAYROLL, not_a_key, b""))
    with pytest.raises(DecryptionFailed):
        await crypto.decrypt_data_key(APP, Item(SALARY, pairs[0].sealed.sealed_key, b"wrong"))
    shared, shared_usage = await _audit(ready), _usage(ready)

    fresh = [
        await CryptoService(ready.ctx).generate_data_key(APP, SALARY, b"f%d" % i, spec)
        for i, spec in enumerate([DataKeySpec.AES_256] * 3 + [DataKeySpec.AES_128])
    ]
    reopened = [
        await CryptoService(ready.ctx).decrypt_data_key(
            APP, Item(SALARY, p.sealed.sealed_key, b"f%d" % i)
        )
        for i, p in enumerate(pairs)
    ]
    await ready.encrypt(b"not a key")
    for item in (Item(PAYROLL, not_a_key, b""), Item(SALARY, pairs[0].sealed.sealed_key, b"w")):
        with pytest.raises(DecryptionFailed):
            await CryptoService(ready.ctx).decrypt_data_key(APP, item)
    assert shared == await _audit(ready)
    after = _usage(ready)
    assert {k: v - usage.get(k, 0) for k, v in shared_usage.items()} == {
        k: v - shared_usage.get(k, 0) for k, v in after.items()
    }
    assert [len(p.plaintext_key) for p in pairs] == [len(p.plaintext_key) for p in fresh]
    assert [p.sealed.key_version for p in pairs] == [p.sealed.key_version for p in fresh]
    assert [o.plaintext_key for o in opened] == [p.plaintext_key for p in pairs]
    assert reopened == opened


async def test_a_batch_over_the_limit_is_refused_before_anything_runs(ready: World) -> None:
    await _world(ready)
    await _audit(ready)
    columns = ItemColumns(PAYROLL, [b"x"] * 3, [b""] * 3)
    with pytest.raises(InvalidInput):
        await ready.crypto.run_columns(Operation.ENCRYPT, APP, columns, max_items=2)
    assert not await _audit(ready)
    none = await ready.crypto.run_columns(
        Operation.ENCRYPT, APP, ItemColumns([NO_TARGET], [b"x"], [b""]), max_items=2
    )
    assert none.errors == {0: NO_TARGET} and none.data == [None]


async def test_a_columns_batch_costs_its_items_with_a_target_against_the_rate(
    ready: World,
) -> None:
    """As ``run_batch``: the rate limit counts the items that have a target, before any runs."""
    await _world(ready)
    limits = DataPlaneLimits(rate=RateLimiter(ready.clock, rate=1.0, burst=3))
    crypto = CryptoService(ready.ctx, limits=limits)
    two = ItemColumns([PAYROLL, NO_TARGET, PAYROLL, NO_TARGET], [b"a", b"", b"b", b""], [b""] * 4)
    served = await crypto.run_columns(Operation.ENCRYPT, APP, two, max_items=9)
    assert sorted(served.errors) == [1, 3] and served.data[0] and served.data[2]
    await _audit(ready)
    with pytest.raises(ResourceExhausted):  # 1 token left, 2 items with a target
        await crypto.run_columns(Operation.ENCRYPT, APP, two, max_items=9)
    events = await _audit(ready)
    assert [(key[2], key[5], n) for key, n in events.items()] == [
        (AuditResult.FAILURE, "RATE_LIMITED", 2)
    ]


async def test_inside_the_unavailable_grace_every_item_goes_item_by_item(ready: World) -> None:
    """While the chain may fail closed (the KMS unreachable), nothing is served from a permit:
    within the grace the items are served item by item, after it every one is refused."""
    await _world(ready)
    sealed = await _sealed(ready, SALARY, [b"a", b"b"])
    ready.kms.unreachable = True
    await sync_external_key(ready.ctx)
    items: list[Item | EkmsError] = [
        Item(SALARY, sealed[0], b"row-0"),
        NO_TARGET,
        Item(SALARY, sealed[1], b"wrong"),
        Item(SALARY, sealed[1], b"row-1"),
    ]
    got = await _compare(ready, Operation.DECRYPT, items)
    assert [r.data for r in got] == [b"a", None, None, b"b"]
    ready.clock.advance(16 * 60)
    late = _results(
        await ready.crypto.run_columns(Operation.DECRYPT, APP, _columns(items, False), max_items=9)
    )
    assert {getattr(r.error, "reason", None) for r in late} == {
        Reason.EXTERNAL_KEY_UNAVAILABLE,
        Reason.INVALID_INPUT,
    }
