"""Issue 11, finding 1: the data plane checks each kind of item once, rewrap rides the same
shortcut as decrypt and encrypt (with the same results and audit as item by item), the batch
limit is the use case's, and REST decodes base64 once."""

from __future__ import annotations

import base64
from collections import Counter

import pytest

from app.api.schemas import crypto as schemas
from app.api.schemas.common import InputModel
from app.application.crypto import CryptoService, Item, ItemResult
from app.application.field_configs import FieldConfigInput, create_field_config
from app.application.modules import ModuleInput, create_module, rotate_module_key
from app.application.targets import Target
from app.domain import ciphertext as ct
from app.domain.errors import InvalidInput, NotFound
from app.domain.values import Algorithm, Caller, Operation
from tests.unit.conftest import ADMIN, APP, World

MODULE = "global.payroll"
SALARY = Target.of(table="employees", column="salary")


async def _audit(ready: World) -> Counter[tuple[object, ...]]:
    await ready.ctx.audit.flush()
    events: Counter[tuple[object, ...]] = Counter(
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
    if result.error is None:
        return ("ok", result.key_version)
    return (type(result.error).__name__, result.error.reason, str(result.error))


async def test_the_first_item_of_a_kind_is_checked_once(
    ready: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_field_config(ready.ctx, ADMIN, FieldConfigInput("employees", "salary", MODULE))
    sealed = await ready.crypto.encrypt_batch(APP, [Item(SALARY, b"%d" % i) for i in range(3)])
    peer = Caller("payroll-peer", APP.roles)  # nothing remembered for it yet; keys are warm
    chain = ready.ctx.chain
    check_serving, parse = chain.check_serving, ct.parse
    calls: Counter[str] = Counter()

    def counting_check(*args: object) -> object:
        calls["check_serving"] += 1
        return check_serving(*args)  # type: ignore[arg-type]

    def counting_parse(blob: bytes) -> ct.Ciphertext:
        calls["parse"] += 1
        return parse(blob)

    monkeypatch.setattr(chain, "check_serving", counting_check)
    monkeypatch.setattr(ct, "parse", counting_parse)
    encrypted = await ready.crypto.encrypt_batch(peer, [Item(SALARY, b"v")] * 20)
    assert all(r.error is None for r in encrypted) and calls == {"check_serving": 1}
    calls.clear()
    opened = await ready.crypto.decrypt_batch(peer, [Item(SALARY, r.data or b"") for r in sealed])
    assert [r.data for r in opened] == [b"0", b"1", b"2"]
    assert calls == {"check_serving": 1, "parse": 1}
    calls.clear()
    rewrapped = await ready.crypto.rewrap_batch(peer, [Item(SALARY, r.data or b"") for r in sealed])
    assert [r.data for r in rewrapped] == [r.data for r in sealed]
    assert calls == {"check_serving": 1, "parse": 1}


async def _one_by_one_rewrap(ready: World, items: list[Item]) -> list[ItemResult]:
    """Each item alone through a fresh service: the item-by-item path."""
    return [(await CryptoService(ready.ctx).rewrap_batch(APP, [item]))[0] for item in items]


@pytest.mark.parametrize("algorithm", [Algorithm.AES_256_GCM, Algorithm.AES_256_SIV])
async def test_a_mixed_rewrap_batch_matches_item_by_item(
    ready: World, algorithm: Algorithm
) -> None:
    name = MODULE if algorithm is Algorithm.AES_256_GCM else "global.siv"
    if algorithm is not Algorithm.AES_256_GCM:
        await ready.module(name, algorithm)
    await create_module(ready.ctx, ADMIN, ModuleInput("global.hr"))  # no policy: rejected
    module = Target(module=name)
    crypto = ready.crypto
    old = [await ready.encrypt(b"v%d" % i, module=name, context=b"r%d" % i) for i in range(3)]
    short = await ready.encrypt(b"ssn", module=name, context=b"s")  # under 50 bytes with SIV
    await rotate_module_key(ready.ctx, ADMIN, name)
    new = await ready.encrypt(b"current", module=name, context=b"n")
    items = [
        Item(module, old[0], b"r0"),
        Item(module, old[1], b"r1"),
        Item(module, new, b"n"),  # already under the active version: comes back as it is
        Item(module, old[2], b"wrong context"),
        Item(module, old[1][:-1] + bytes([old[1][-1] ^ 1]), b"r1"),  # tampered
        Item(module, old[0][:20], b"r0"),  # shorter than the header
        Item(module, old[0], b"c" * (ct.MAX_CONTEXT + 1)),
        Item(Target(module="global.hr"), old[0], b"r0"),  # the header names another module
        Item(Target(module="global.nope"), old[0], b"r0"),
        Item(module, short, b"s"),
        Item(module, short, b"s"),
        Item(module, old[2], b"r2"),
        Item(module, new, b"n"),
    ]
    await _audit(ready)
    before = _usage(ready)
    batch = await crypto.rewrap_batch(APP, items)
    batch_audit, batch_usage = await _audit(ready), _usage(ready)
    single = await _one_by_one_rewrap(ready, items)
    assert [_shape(r) for r in batch] == [_shape(r) for r in single]
    assert batch_audit == await _audit(ready)
    after = _usage(ready)
    assert {k: batch_usage[k] - before.get(k, 0) for k in batch_usage} == {
        k: after[k] - batch_usage[k] for k in after
    }
    assert batch[2].data == new and batch[12].data == new
    opened = await crypto.decrypt_batch(
        APP,
        [Item(i.target, r.data or b"", i.context) for i, r in zip(items, batch, strict=True)],
    )
    wanted = [b"v0", b"v1", b"current", b"ssn", b"ssn", b"v2", b"current"]
    assert [r.data for r in opened if r.error is None] == wanted
    assert {r.key_version for r in batch if r.error is None} == {2}


async def test_the_batch_limit_is_checked_before_any_entry_is_read(ready: World) -> None:
    read: list[object] = []

    def to_item(entry: object) -> Item:
        read.append(entry)
        if entry is None:
            raise NotFound("no such thing")
        return Item(Target(module=MODULE), b"x")

    await _audit(ready)
    for operation in (Operation.ENCRYPT, Operation.DECRYPT, Operation.REWRAP):
        with pytest.raises(InvalidInput) as err:
            await ready.crypto.run_batch(operation, APP, ["a", None, "b"], to_item, max_items=2)
        assert err.value.field == "items"
    assert read == [] and await _audit(ready) == Counter()
    results = await ready.crypto.run_batch(
        Operation.ENCRYPT, APP, ["a", None, "b"], to_item, max_items=3
    )
    assert [type(r.error).__name__ for r in results] == ["NoneType", "NotFound", "NoneType"]
    assert [r.key_version for r in results] == [1, None, 1]
    # Only entries that cannot be read: none reaches the key chain, each keeps its error.
    ready.ctx.chain.purge()
    alone = await ready.crypto.run_batch(Operation.DECRYPT, APP, [None], to_item, max_items=1)
    assert [type(r.error).__name__ for r in alone] == ["NotFound"]
    assert ready.ctx.chain.cached is None


def test_rest_bodies_decode_their_base64_once(monkeypatch: pytest.MonkeyPatch) -> None:
    decode = base64.b64decode
    calls: list[object] = []

    def counting(*args: object, **kwargs: object) -> bytes:
        calls.append(args[0])
        return decode(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(base64, "b64decode", counting)
    body = schemas.EncryptIn(module=MODULE, plaintext="aGk=", context="cm93LTE=")
    item = body.item()
    assert (item.data, item.context) == (b"hi", b"row-1")
    assert len(calls) == 2  # one per value, when the body was validated
    assert schemas.EncryptIn(module=MODULE, plaintext="aGk=").item().context == b""


def test_rest_length_limits_are_the_domains_in_base64() -> None:
    def limit(model: type[InputModel], name: str) -> int:
        (found,) = [
            m.max_length for m in model.model_fields[name].metadata if hasattr(m, "max_length")
        ]
        return int(found)

    assert limit(schemas.EncryptIn, "plaintext") == len(base64.b64encode(b"x" * ct.MAX_PLAINTEXT))
    assert limit(schemas.EncryptIn, "context") == len(base64.b64encode(b"x" * ct.MAX_CONTEXT))
