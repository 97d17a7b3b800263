"""Stream groups: several items in one stream message (field 5 of ``EncryptItem`` /
``DecryptItem``), answered by one message whose ``results`` hold one result per item. The
server pays grpc.aio's per-message cost once per group instead of once per item.

Each group is sent with its index as ``id``; the ids of its items are remembered until its
answer arrives, so a group that fails as a whole (over the batch limit: ``INVALID_ARGUMENT``)
still gives one result per item, each carrying that error. Empty groups are not sent (an empty
message would be a one-item message) and give no list."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

from ekms_client._common import optional_target_pb
from ekms_client._errors import EkmsRpcError
from ekms_client._types import ItemResult, Target

Sent = dict[str, list[str]]
"""The item ids of each group sent and not answered yet, by the group's ``id``."""


def _message(
    n: int,
    group: Sequence[Any],
    sent: Sent,
    target: Target | None,
    convert: Callable[[Any], Any],
    make: Any,
) -> Any:
    items = [convert(item) for item in group]
    sent[str(n)] = [item.id for item in items]  # before it is sent: the answer comes after
    return make(id=str(n), target=optional_target_pb(target), items=items)


def group_requests(
    groups: Iterable[Sequence[Any]],
    sent: Sent,
    target: Target | None,
    convert: Callable[[Any], Any],
    make: Any,
) -> Iterator[Any]:
    """The stream messages of ``groups`` (``convert``: one item's message; ``make``: the
    message class, ``EncryptItem`` or ``DecryptItem``)."""
    for n, group in enumerate(groups):
        if group:
            yield _message(n, group, sent, target, convert, make)


async def agroup_requests(
    groups: Iterable[Sequence[Any]] | AsyncIterable[Sequence[Any]],
    sent: Sent,
    target: Target | None,
    convert: Callable[[Any], Any],
    make: Any,
) -> AsyncIterator[Any]:
    if not isinstance(groups, AsyncIterable):
        for message in group_requests(groups, sent, target, convert, make):
            yield message
        return
    n = 0
    async for group in groups:
        if group:
            yield _message(n, group, sent, target, convert, make)
        n += 1


def group_results(
    sent: Sent, convert: Callable[[Any], ItemResult]
) -> Callable[[Any], list[ItemResult]]:
    """A group's answer as one ``ItemResult`` per item, in item order."""

    def results(message: Any) -> list[ItemResult]:
        ids = sent.pop(message.id, [])
        if message.status.code != 0:
            error = EkmsRpcError.from_status(message.status)
            return [ItemResult(ident, error=error) for ident in ids]
        return [convert(result) for result in message.results]

    return results
