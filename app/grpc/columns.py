"""Batches and stream groups as columns: translation only, close to the wire.

``columns_of`` reads a repeated field of item messages into ``ItemColumns`` (the data and the
contexts as lists, one target for all when no item names its own) with C-level iteration only
(``map`` over attribute getters): no Python code runs per item. ``encode_results`` writes the
answers as the serialized repeated field of result messages (``EncryptResult``,
``DecryptResult`` and ``RewrapResult`` share fields 1-4: id, status, data, key_version; a
rewrap adds 5, changed), which the response message then parses in one call: building them
through the protobuf API cost more than the cipher. The bytes are exactly what protobuf's own
serializer writes for those messages (fields in number order, empty ones left out, an OK
status present and empty); ``tests/unit/test_grpc_columns.py`` compares them. An item that
failed is serialized by protobuf itself, with its status from ``errors.to_status``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter, methodcaller
from typing import Any

from app.application.crypto import ColumnResults, ItemColumns
from app.application.targets import Target
from app.domain.errors import EkmsError, InvalidInput
from app.grpc.convert import TargetCache
from app.grpc.errors import to_status

_HAS_TARGET = methodcaller("HasField", "target")
_GROUP = attrgetter("items")
_CONTEXT = attrgetter("context")
_ID = attrgetter("id")

_SMALL = [bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(1 << 14)]
"""The varint of every n < 2**14: the lengths of ids and of most values."""

OK_STATUS_BYTES = b"\x12\x00"  # field 2, length 0: an OK google.rpc.Status (code 0 unwritten)
_ID_TAG, _DATA_TAG, _VERSION_TAG, _CHANGED = b"\x0a", b"\x1a", b"\x20", b"\x28\x01"
BATCH_RESULTS = b"\x0a"  # field 1 of *BatchResponse
GROUP_RESULTS = b"\x2a"  # field 5 of EncryptResult / DecryptResult


def varint(n: int) -> bytes:
    if n < 1 << 14:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def columns_of(
    messages: Sequence[Any], targets: TargetCache, value: Callable[[Any], bytes]
) -> tuple[ItemColumns, list[Any]]:
    """The items of a batch or group, and the messages themselves (in order, for their ids).

    ``targets`` holds the default target; an item naming none gets the default's error when
    there is no default, and an item that is itself a group is ``InvalidInput``."""
    items = list(messages)
    data = list(map(value, items))
    contexts = list(map(_CONTEXT, items))
    # RewrapItem has no ``items``: only encrypt and decrypt items can hold a group.
    groups = bool(items) and "items" in items[0].DESCRIPTOR.fields_by_name
    one: Target | Sequence[Target | EkmsError]
    if any(map(_HAS_TARGET, items)) or (groups and any(map(len, map(_GROUP, items)))):
        one = [_target(targets, message, groups) for message in items]
    else:
        try:
            one = targets.resolve(None)
        except EkmsError as exc:
            one = [exc] * len(items)
    return ItemColumns(one, data, contexts), items


def _target(targets: TargetCache, message: Any, groups: bool) -> Target | EkmsError:
    if groups and message.items:
        return InvalidInput("an item of a batch or group holds no items", field="items")
    try:
        return targets.resolve(message.target if message.HasField("target") else None)
    except EkmsError as exc:
        return exc


def encode_results(
    tag: bytes,
    items: Sequence[Any],
    results: ColumnResults,
    failed: Callable[[str, EkmsError], bytes],
    inputs: Sequence[bytes] | None = None,
) -> bytes:
    """The results as ``tag``-numbered entries of a repeated field. ``failed`` serializes an
    item's error result; ``inputs`` (a rewrap's ciphertexts) sets ``changed``."""
    parts: list[bytes] = []
    append = parts.append
    small, errors, with_id, no_id = _SMALL, results.errors, _WITH_ID, _NO_ID
    ids = map(_ID, items)
    rows = enumerate(zip(ids, results.data, results.key_versions, strict=True))
    if inputs is None:  # encrypt and decrypt: the same loop without ``changed``
        for i, (ident, out, version) in rows:
            if out is None:
                body = failed(ident, errors[i])
                parts.extend((tag, varint(len(body)), body))
                continue
            raw_id = ident.encode()
            m, n = len(raw_id), len(out)
            if 0 < n < 16000 and m < 128 and version < 128:  # the usual shape: one format call
                if m:
                    head = small[m + n + (8 if n < 128 else 9)]
                    append(
                        with_id % (tag, head, small[m], raw_id, small[n], out, small[version], b"")
                    )
                else:
                    head = small[n + (6 if n < 128 else 7)]
                    append(no_id % (tag, head, small[n], out, small[version], b""))
                continue
            append(tag + _body(raw_id, out, version, False))
        return b"".join(parts)
    for i, (ident, out, version) in rows:
        if out is None:
            body = failed(ident, errors[i])
            parts.extend((tag, varint(len(body)), body))
            continue
        raw_id = ident.encode()
        m, n = len(raw_id), len(out)
        changed = out is not inputs[i] and out != inputs[i]
        if 0 < n < 16000 and m < 128 and version < 128:
            size = (m + 2 if m else 0) + n + (6 if n < 128 else 7) + (2 if changed else 0)
            suffix = _CHANGED if changed else b""
            if m:
                append(
                    with_id
                    % (tag, small[size], small[m], raw_id, small[n], out, small[version], suffix)
                )
            else:
                append(no_id % (tag, small[size], small[n], out, small[version], suffix))
            continue
        append(tag + _body(raw_id, out, version, changed))
    return b"".join(parts)


_WITH_ID = b"%b%b\x0a%b%b\x12\x00\x1a%b%b\x20%b%b"
_NO_ID = b"%b%b\x12\x00\x1a%b%b\x20%b%b"


def _body(raw_id: bytes, out: bytes, version: int, changed: bool) -> bytes:
    """One OK result message of any shape, prefixed with its length."""
    parts = [_ID_TAG + varint(len(raw_id)) + raw_id] if raw_id else []
    parts.append(OK_STATUS_BYTES)
    if out:
        parts.append(_DATA_TAG + varint(len(out)) + out)
    parts.append(_VERSION_TAG + varint(version))
    if changed:
        parts.append(_CHANGED)
    body = b"".join(parts)
    return varint(len(body)) + body


def error_result(make: Callable[..., Any], method: str) -> Callable[[str, EkmsError], bytes]:
    """``failed`` for ``encode_results``: ``make`` (the result message class) with the status."""

    def failed(ident: str, error: EkmsError) -> bytes:
        data: bytes = make(id=ident, status=to_status(error, method=method)).SerializeToString()
        return data

    return failed
