"""Stream groups from the Python client (``encrypt_groups`` / ``decrypt_groups``, blocking and
asyncio) against the real server: one list per group, one result per item in item order with
its id and its own status, the group's default target, a group over the batch limit failing
each of its items with the group's error while the stream goes on, empty groups not sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from ekms_client import AsyncEkmsClient, DecryptItem, EkmsClient, EncryptItem, Target

from tests.e2e.conftest import BILLING, Ekms, mint

SALARY = Target.for_field("employees", "salary")
BILLING_MODULE = Target.for_module(BILLING)
UNKNOWN = Target.for_module("global.unknown")


def _shape(results: list[object]) -> list[tuple[str, bool]]:
    return [(r.id, r.ok) for r in results]  # type: ignore[attr-defined]


async def test_async_groups_answer_per_item_in_order(ekms: Ekms) -> None:
    limit = ekms.container.settings.max_batch_items

    async def groups() -> AsyncIterator[list[EncryptItem]]:
        yield [EncryptItem(b"v%d" % i, context=b"c%d" % i, id=f"a{i}") for i in range(3)]
        yield []  # not sent, no list
        yield [
            EncryptItem(b"m", target=BILLING_MODULE, id="m"),
            EncryptItem(b"x", target=UNKNOWN, id="unknown"),
            EncryptItem(b"s", id="s"),
        ]
        yield [EncryptItem(b"o", id=f"over{i}") for i in range(limit + 1)]
        yield [EncryptItem(b"after", id="after")]

    async with AsyncEkmsClient(
        ekms.address, token=lambda: mint("billing-svc", "billing")
    ) as client:
        sealed = [r async for r in client.encrypt_groups(groups(), target=SALARY)]
        assert [len(g) for g in sealed] == [3, 3, limit + 1, 1]
        assert _shape(sealed[0]) == [("a0", True), ("a1", True), ("a2", True)]
        assert _shape(sealed[1]) == [("m", True), ("unknown", False), ("s", True)]
        assert sealed[1][1].error is not None
        assert sealed[1][1].error.reason == "MODULE_NOT_FOUND"
        over = sealed[2]
        assert [r.id for r in over] == [f"over{i}" for i in range(limit + 1)]
        assert {(r.error.code, r.error.reason) for r in over if r.error} == {
            (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_INPUT")
        }
        assert all(not r.ok for r in over)
        assert sealed[3][0].ok  # the stream went on
        back = [
            r
            async for r in client.decrypt_groups(
                [
                    [
                        DecryptItem(r.unwrap(), context=b"c%d" % i, id=r.id)
                        for i, r in enumerate(sealed[0])
                    ],
                    [
                        DecryptItem(sealed[1][0].unwrap(), target=BILLING_MODULE, id="m"),
                        DecryptItem(sealed[0][0].unwrap(), context=b"wrong", id="wrong"),
                    ],
                ],
                target=SALARY,
            )
        ]
        assert [[(r.id, r.data) for r in g] for g in back] == [
            [("a0", b"v0"), ("a1", b"v1"), ("a2", b"v2")],
            [("m", b"m"), ("wrong", None)],
        ]
        assert back[1][1].error is not None
        assert back[1][1].error.reason == "DECRYPTION_FAILED"


async def test_sync_groups_round_trip(ekms: Ekms) -> None:
    token = mint("billing-svc", "billing")

    def use_it() -> list[list[tuple[str, bytes | None]]]:
        with EkmsClient(ekms.address, token=token) as client:
            groups = (
                [EncryptItem(b"%d-%d" % (g, i), id=f"{g}.{i}") for i in range(4)] for g in range(3)
            )
            sealed = list(client.encrypt_groups(groups, target=SALARY))
            back = client.decrypt_groups(
                ([DecryptItem(r.unwrap(), id=r.id) for r in group] for group in sealed),
                target=SALARY,
            )
            return [[(r.id, r.data) for r in group] for group in back]

    opened = await asyncio.to_thread(use_it)
    assert opened == [[(f"{g}.{i}", b"%d-%d" % (g, i)) for i in range(4)] for g in range(3)]
