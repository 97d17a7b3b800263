"""The data plane takes a shortcut after a caller's first good item for a target (see
``app.application.crypto``): every result and every audit event must be exactly what the same
items give one by one on the item-by-item path, and a change to the key chain must end it."""

from __future__ import annotations

from collections import Counter

import pytest

from app.application.crypto import CryptoService, Item, ItemResult
from app.application.field_configs import FieldConfigInput, create_field_config
from app.application.modules import (
    KeyAction,
    ModuleInput,
    change_key_state,
    create_module,
    rotate_module_key,
)
from app.application.policies import delete_policy, list_policies
from app.application.sync import sync_external_key
from app.application.targets import Target
from app.domain.errors import AccessDenied, KeyUnavailable, Reason
from app.domain.values import Algorithm, Caller, ExternalKeyStatus
from tests.unit.conftest import ADMIN, APP, World

MODULE = "global.payroll"
DENIED = "global.hr"  # no policy for APP: the default (Reject) decides
SALARY = Target.of(table="employees", column="salary")
LEGACY = Target.of(table="employees", column="legacy")  # inactive: decrypts, never encrypts


async def _world(ready: World, algorithm: Algorithm = Algorithm.AES_256_GCM) -> None:
    if algorithm is not Algorithm.AES_256_GCM:
        await ready.module("global.siv", algorithm)
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


def _shape(result: ItemResult) -> tuple[object, ...]:
    error = result.error
    if error is None:
        return ("ok", result.data, result.key_version)
    return (type(error).__name__, error.reason, str(error))


async def _one_by_one(ready: World, items: list[Item], decrypt: bool) -> list[ItemResult]:
    """Each item alone through a fresh service: nothing remembered, the item-by-item path."""
    results = []
    for item in items:
        crypto = CryptoService(ready.ctx)
        op = crypto.decrypt_batch if decrypt else crypto.encrypt_batch
        results.append((await op(APP, [item]))[0])
    return results


async def test_a_mixed_decrypt_batch_matches_item_by_item(ready: World) -> None:
    await _world(ready)
    crypto = ready.crypto
    v1 = [
        (await crypto.encrypt(APP, Item(SALARY, f"v{i}".encode(), b"row-%d" % i))).data or b""
        for i in range(4)
    ]
    by_module = await ready.encrypt(b"module value", context=b"m")
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    v2 = (await crypto.encrypt(APP, Item(SALARY, b"after rotation", b"row-9"))).data or b""
    other = await ready.encrypt(b"other", context=b"x")
    items = [
        Item(SALARY, v1[0], b"row-0"),
        Item(SALARY, v1[1], b"row-1"),
        Item(SALARY, v2, b"row-9"),  # a second header: key version 2
        Item(SALARY, v1[2], b"wrong context"),
        Item(SALARY, v1[3][:-1] + bytes([v1[3][-1] ^ 1]), b"row-3"),  # tampered tag
        Item(SALARY, v1[0][:30], b"row-0"),  # shorter than any body
        Item(SALARY, v1[0][:10], b"row-0"),  # shorter than the header
        Item(SALARY, v1[1], b"c" * 4097),  # oversized context
        Item(LEGACY, v1[0], b"row-0"),  # another binding: does not verify
        Item(Target.of(table="employees", column="nope"), v1[0], b"row-0"),
        Item(Target(module=MODULE), by_module, b"m"),
        Item(Target(module=MODULE), other, b"x"),
        Item(Target(module=DENIED), by_module, b"m"),  # the header names another module
        Item(SALARY, v1[3], b"row-3"),
        Item(SALARY, v1[0], b"row-0"),
        Item(SALARY, v2, b"row-9"),
    ]
    await _audit(ready)
    batch = await crypto.decrypt_batch(APP, items)
    batch_audit = await _audit(ready)
    single = await _one_by_one(ready, items, decrypt=True)
    assert [_shape(r) for r in batch] == [_shape(r) for r in single]
    assert batch_audit == await _audit(ready)
    assert [r.data for r in batch[:3]] == [b"v0", b"v1", b"after rotation"]
    assert sum(r.error is None for r in batch) == 8


async def test_a_denied_module_is_denied_and_audited_for_every_item(ready: World) -> None:
    await _world(ready)
    items = [Item(Target(module=DENIED), b"x" * 64, b"%d" % i) for i in range(3)]
    await _audit(ready)
    batch = await ready.crypto.encrypt_batch(APP, items)
    assert {type(r.error).__name__ for r in batch} == {"AccessDenied"}
    batch_audit = await _audit(ready)
    await _one_by_one(ready, items, decrypt=False)
    assert batch_audit == await _audit(ready)
    assert sum(batch_audit.values()) == 3


@pytest.mark.parametrize("algorithm", [Algorithm.AES_256_GCM, Algorithm.AES_256_SIV])
async def test_a_mixed_encrypt_batch_matches_item_by_item(
    ready: World, algorithm: Algorithm
) -> None:
    await _world(ready, algorithm)
    module = Target(module="global.siv" if algorithm.deterministic else MODULE)
    items = [
        Item(module, b"a", b"1"),
        Item(module, b"b", b"2"),
        Item(SALARY, b"c", b"3"),
        Item(module, b"x" * ((1 << 20) + 1), b"4"),  # oversized value
        Item(module, b"d", b"c" * 4097),  # oversized context
        Item(LEGACY, b"e", b"5"),  # inactive field configuration
        Item(Target(module="global.nope"), b"f", b"6"),
        Item(Target(module=DENIED), b"g", b"7"),
        Item(module, b"h", b"8"),
        Item(SALARY, b"i", b"9"),
    ]
    await _audit(ready)
    usage_before = _usage(ready)
    batch = await ready.crypto.encrypt_batch(APP, items)
    batch_audit = await _audit(ready)
    batch_usage = _usage(ready)
    single = await _one_by_one(ready, items, decrypt=False)
    assert batch_audit == await _audit(ready)
    after = _usage(ready)
    assert {k: batch_usage[k] - usage_before.get(k, 0) for k in batch_usage} == {
        k: after[k] - batch_usage[k] for k in after
    }
    assert [r.error is None for r in batch] == [r.error is None for r in single]
    for item, got, want in zip(items, batch, single, strict=True):
        if got.error is not None or want.error is not None:
            assert _shape(got) == _shape(want)
            continue
        assert got.key_version == want.key_version
        deterministic = algorithm.deterministic and item.target == module  # SALARY is GCM
        assert (got.data == want.data) is deterministic
    decrypted = await ready.crypto.decrypt_batch(
        APP,
        [
            Item(i.target, r.data or b"", i.context)
            for i, r in zip(items, batch, strict=True)
            if r.data
        ],
    )
    assert [r.data for r in decrypted] == [b"a", b"b", b"c", b"h", b"i"]


async def test_only_the_first_item_of_a_kind_goes_item_by_item(
    ready: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _world(ready)
    crypto = ready.crypto
    slow: list[Item] = []
    run = crypto.item_path.run

    def counting(operation: object, snap: object, caller: object, item: Item) -> object:
        slow.append(item)
        return run(operation, snap, caller, item)  # type: ignore[arg-type]

    monkeypatch.setattr(crypto.item_path, "run", counting)
    sealed = await crypto.encrypt_batch(APP, [Item(SALARY, b"%d" % i, b"r") for i in range(50)])
    assert len(slow) == 1 and all(r.error is None for r in sealed)
    opened = await crypto.decrypt_batch(APP, [Item(SALARY, r.data or b"", b"r") for r in sealed])
    assert len(slow) == 2 and [r.data for r in opened] == [b"%d" % i for i in range(50)]


async def test_what_a_caller_was_allowed_ends_with_the_change_that_forbids_it(
    ready: World,
) -> None:
    await _world(ready)
    crypto = ready.crypto
    sealed = await crypto.encrypt(APP, Item(SALARY, b"100", b"r"))
    assert (await crypto.decrypt(APP, Item(SALARY, sealed.data or b"", b"r"))).data == b"100"
    stranger = Caller("stranger", frozenset({"other"}))  # never rides on APP's shortcut
    with pytest.raises(AccessDenied):
        await crypto.decrypt(stranger, Item(SALARY, sealed.data or b"", b"r"))

    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.SUSPEND)
    with pytest.raises(KeyUnavailable):
        await crypto.decrypt(APP, Item(SALARY, sealed.data or b"", b"r"))
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.RESUME)
    assert (await crypto.decrypt(APP, Item(SALARY, sealed.data or b"", b"r"))).data == b"100"

    for policy in await list_policies(ready.ctx, MODULE):
        await delete_policy(ready.ctx, ADMIN, policy.id)
    with pytest.raises(AccessDenied):
        await crypto.encrypt(APP, Item(SALARY, b"200", b"r"))
    with pytest.raises(AccessDenied):
        await crypto.decrypt(APP, Item(SALARY, sealed.data or b"", b"r"))


async def test_a_disabled_external_key_stops_the_shortcut_too(ready: World) -> None:
    await _world(ready)
    sealed = await ready.encrypt(b"x")
    assert await ready.decrypt(sealed) == b"x"
    ready.kms.status = ExternalKeyStatus.DISABLED
    await sync_external_key(ready.ctx)
    with pytest.raises(KeyUnavailable) as err:
        await ready.decrypt(sealed)
    assert err.value.reason is Reason.EXTERNAL_KEY_DISABLED
    with pytest.raises(KeyUnavailable):
        await ready.encrypt(b"y")
