"""Messages <-> use case values. No decisions here beyond the shape of the request."""

from __future__ import annotations

from collections import OrderedDict

from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from app.application.targets import Target
from app.domain.errors import InvalidInput

_TargetKey = tuple[str, str, str]


def target_from(message: pb.Target) -> Target:
    """A ``Target`` from the oneof; ``InvalidInput`` when unset or malformed."""
    kind = message.WhichOneof("kind")
    if kind == "module":
        return Target.of(module=message.module)
    if kind == "field":
        return Target.of(table=message.field.table, column=message.field.column)
    raise InvalidInput("name a target: a field (table, column) or a module", field="target")


class TargetCache:
    """Parsed targets of one batch or stream: most items name the same few targets, so each
    is validated once. Bounded, least recently used first out; errors are not cached."""

    def __init__(self, default: pb.Target | None = None, size: int = 256) -> None:
        self._size = size
        self._entries: OrderedDict[_TargetKey, Target] = OrderedDict()
        self._default = target_from(default) if default is not None else None

    def resolve(self, message: pb.Target | None) -> Target:
        if message is None:
            if self._default is None:
                raise InvalidInput(
                    "name a target on the item or a default target on the batch", field="target"
                )
            return self._default
        key = (message.module, message.field.table, message.field.column)
        target = self._entries.get(key)
        if target is None:
            target = target_from(message)
            self._entries[key] = target
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return target
