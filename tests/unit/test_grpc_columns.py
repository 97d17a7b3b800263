"""``app.grpc.columns``: batch items read as columns, and results written as the exact bytes
protobuf's own serializer gives for the same result messages."""

from __future__ import annotations

from operator import attrgetter

import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from app.application.crypto import ColumnResults
from app.application.targets import Target
from app.domain.errors import DecryptionFailed, EkmsError, InvalidInput, NotFound, Reason
from app.grpc.columns import (
    BATCH_RESULTS,
    GROUP_RESULTS,
    columns_of,
    encode_results,
    error_result,
    varint,
)
from app.grpc.convert import TargetCache
from app.grpc.errors import OK_STATUS, to_status

FIELD = pb.Target(field=pb.Field(table="employees", column="salary"))
SALARY = Target.of(table="employees", column="salary")


def _reference(
    make: type, items: list[pb.DecryptItem], results: ColumnResults, inputs: list[bytes] | None
) -> list[object]:
    """The result messages as the servicer built them before, through protobuf."""
    out = []
    for i, (item, data) in enumerate(zip(items, results.data, strict=True)):
        if data is None:
            out.append(make(id=item.id, status=to_status(results.errors[i], method="M")))
            continue
        fields = {"id": item.id, "status": OK_STATUS, "key_version": results.key_versions[i]}
        if make is pb.RewrapResult:
            fields["ciphertext"] = data
            fields["changed"] = inputs is not None and data != inputs[i]
        elif make is pb.EncryptResult:
            fields["ciphertext"] = data
        else:
            fields["plaintext"] = data
        out.append(make(**fields))
    return out


SHAPES = [
    ("", b"x" * 64, 1),
    ("row-0", b"u" * 100, 5),
    ("r", b"q" * 300, 127),  # a two-byte length
    ("", b"t" * 16383, 3),
    ("i" * 127, b"b" * 15999, 126),  # the largest of the one-call shape
    ("row-1", b"", 2),  # an empty value is not written
    ("é" * 70, b"y" * 200, 130),  # a multi-byte id of 140 bytes, a two-byte version
    ("z" * 20000, b"v" * 20000, 70000),  # lengths past the varint table
    ("big", b"w" * (1 << 20), 1),
    ("failed", None, 0),
    ("", None, 0),
]


@pytest.mark.parametrize(
    ("make", "batch", "group"),
    [
        (pb.DecryptResult, pb.DecryptBatchResponse, pb.DecryptResult),
        (pb.EncryptResult, pb.EncryptBatchResponse, pb.EncryptResult),
        (pb.RewrapResult, pb.RewrapBatchResponse, None),
    ],
)
def test_encoded_results_are_protobufs_own_bytes(make: type, batch: type, group: type) -> None:
    items = [pb.DecryptItem(id=ident) for ident, _, _ in SHAPES]
    errors: dict[int, EkmsError] = {
        9: DecryptionFailed(),
        10: NotFound("no such module", reason=Reason.MODULE_NOT_FOUND),
    }
    results = ColumnResults(
        [data for _, data, _ in SHAPES], [version for _, _, version in SHAPES], errors
    )
    inputs = [
        b"x" * 64,
        b"u" * 100,
        b"o",
        b"t" * 16383,
        b"",
        b"other",
        b"v" * 20000,
        b"w",
        b"",
        b"",
    ]
    # unchanged: 0 (the input object itself), 1 and 3 (equal bytes), 5 and 7
    rewrap = inputs if make is pb.RewrapResult else None
    if rewrap is not None:
        results.data[0] = inputs[0]  # the very input object, as the rewrap path gives it
    want = _reference(make, items, results, rewrap)
    body = encode_results(BATCH_RESULTS, items, results, error_result(make, "M"), rewrap)
    assert body == batch(results=want).SerializeToString()
    parsed = batch.FromString(body)
    assert [r.status.code for r in parsed.results] == [0] * 9 + [3, 5]
    assert all(r.HasField("status") for r in parsed.results)
    if group is not None:
        in_group = encode_results(GROUP_RESULTS, items, results, error_result(make, "M"))
        assert in_group == group(results=want).SerializeToString()


def test_varint_matches_protobuf() -> None:
    for n in (0, 1, 127, 128, 300, 16383, 16384, 1 << 21, (1 << 32) - 1):
        assert varint(n) == pb.DecryptResult(key_version=n).SerializeToString()[1:] or n == 0


def test_columns_read_one_target_or_each_items_own() -> None:
    value = attrgetter("ciphertext")
    items = [pb.DecryptItem(id=str(i), ciphertext=b"c%d" % i, context=b"x%d" % i) for i in range(3)]
    columns, messages = columns_of(items, TargetCache(FIELD), value)
    assert columns.targets == SALARY
    assert (list(columns.data), list(columns.contexts)) == (
        [b"c0", b"c1", b"c2"],
        [b"x0", b"x1", b"x2"],
    )
    assert [m.id for m in messages] == ["0", "1", "2"]

    no_default, _ = columns_of(items[:2], TargetCache(None), value)
    assert isinstance(no_default.targets, list)
    assert all(isinstance(t, InvalidInput) for t in no_default.targets)

    mixed = [
        pb.DecryptItem(ciphertext=b"a"),
        pb.DecryptItem(target=pb.Target(module="global.payroll"), ciphertext=b"b"),
        pb.DecryptItem(target=pb.Target(), ciphertext=b"c"),  # names neither kind
        pb.DecryptItem(items=[pb.DecryptItem(ciphertext=b"d")]),  # a group inside a batch
    ]
    columns, _ = columns_of(mixed, TargetCache(FIELD), value)
    assert isinstance(columns.targets, list)
    first, second, third, fourth = columns.targets
    assert first == SALARY and second == Target(module="global.payroll")
    assert isinstance(third, InvalidInput) and isinstance(fourth, InvalidInput)
    assert fourth.field == "items"

    rewraps = [pb.RewrapItem(ciphertext=b"a"), pb.RewrapItem(target=FIELD, ciphertext=b"b")]
    columns, _ = columns_of(rewraps, TargetCache(None), value)  # a RewrapItem holds no group
    assert isinstance(columns.targets, list)
    assert isinstance(columns.targets[0], InvalidInput) and columns.targets[1] == SALARY
