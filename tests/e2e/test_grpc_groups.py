"""Stream messages that carry several items (a group, ``items``/``results``) on a real server:
one result per item in order, each with its own status, beside one-item messages on the same
stream; a group that breaks the rules gets its own INVALID_ARGUMENT and the stream goes on. And
a batch whose item is a group refuses that item only."""

from __future__ import annotations

import grpc
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from tests.e2e.conftest import Ekms, field_target, item_reason, module_target

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


async def test_a_stream_of_groups_and_single_items_answers_each_item(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    values = {f"row-{i}": f"value {i}".encode() for i in range(6)}
    group = pb.EncryptItem(
        id="g1",
        target=field_target(),
        items=[pb.EncryptItem(id=k, plaintext=v, context=k.encode()) for k, v in values.items()]
        + [
            pb.EncryptItem(id="unknown", target=module_target("global.nope"), plaintext=b"x"),
            pb.EncryptItem(id="module", target=module_target(), plaintext=b"m"),
        ],
    )
    requests = [
        pb.EncryptItem(id="single", target=module_target(), plaintext=b"s"),
        group,
        pb.EncryptItem(id="bad-group", target=field_target(), plaintext=b"p", items=[group]),
        pb.EncryptItem(id="too-big", target=field_target(), items=[pb.EncryptItem()] * 51),
        pb.EncryptItem(id="after", target=module_target(), plaintext=b"a"),
    ]
    call = ekms.stub.EncryptStream(iter(requests), metadata=md)
    answers = [r async for r in call]
    assert await call.code() is OK
    assert [a.id for a in answers] == ["single", "g1", "bad-group", "too-big", "after"]
    single, sealed, bad, too_big, after = answers
    assert item_reason(single.status) == item_reason(after.status) == (OK, None)
    assert item_reason(sealed.status) == (OK, None) and not sealed.ciphertext
    assert [r.id for r in sealed.results] == [*values, "unknown", "module"]
    assert [item_reason(r.status) for r in sealed.results] == [(OK, None)] * 6 + [
        (NOT_FOUND, "MODULE_NOT_FOUND"),
        (OK, None),
    ]
    assert all(r.key_version == 1 for r in sealed.results if r.status.code == 0)
    for refused in (bad, too_big):
        assert item_reason(refused.status) == (INVALID, "INVALID_INPUT") and not refused.results

    opening = pb.DecryptItem(
        id="open",
        target=field_target(),
        items=[
            pb.DecryptItem(id=r.id, ciphertext=r.ciphertext, context=r.id.encode())
            for r in sealed.results[:6]
        ]
        + [
            pb.DecryptItem(id="wrong-context", ciphertext=sealed.results[0].ciphertext),
            pb.DecryptItem(
                id="module", target=module_target(), ciphertext=sealed.results[7].ciphertext
            ),
        ],
    )
    lone = pb.DecryptItem(id="lone", target=module_target(), ciphertext=single.ciphertext)
    call = ekms.stub.DecryptStream(iter([opening, lone, opening]), metadata=md)
    opened = [r async for r in call]
    assert [o.id for o in opened] == ["open", "lone", "open"]
    assert opened[1].plaintext == b"s"
    for answer in (opened[0], opened[2]):  # the second time from what the first one found
        assert {r.id: r.plaintext for r in answer.results[:6]} == values
        assert item_reason(answer.results[6].status) == (INVALID, "DECRYPTION_FAILED")
        assert answer.results[7].plaintext == b"m"
    assert opened[0].SerializeToString() == opened[2].SerializeToString()


async def test_a_batch_item_that_is_a_group_is_refused_alone(ekms: Ekms) -> None:
    md = ekms.auth("billing-svc", "billing")
    response = await ekms.stub.EncryptBatch(
        pb.EncryptBatchRequest(
            target=module_target(),
            items=[
                pb.EncryptItem(id="a", plaintext=b"a"),
                pb.EncryptItem(id="nested", items=[pb.EncryptItem(plaintext=b"b")]),
                pb.EncryptItem(id="c", plaintext=b"c"),
            ],
        ),
        metadata=md,
    )
    assert [(r.id, item_reason(r.status)) for r in response.results] == [
        ("a", (OK, None)),
        ("nested", (INVALID, "INVALID_INPUT")),
        ("c", (OK, None)),
    ]
