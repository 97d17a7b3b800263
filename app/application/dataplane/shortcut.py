"""The batch loop, and the permits it keeps per caller.

Each item is served from the permit of its kind (operation, target and, to open, the
ciphertext header) when there is one and it can tell the result; any other item (the first of
its kind, oversized, a ciphertext that does not verify, a lease with no nonce left) goes
through the item path, whose step returns the permit it built on the way. So the checks run
once per kind, and every result and audit event is what the item path alone would give.

What was found is kept per caller (``PermitCache``) for as long as the chain serves the same
snapshot: the first call that gets another snapshot (any change anywhere, a purge included)
drops it all, so it never serves from an old one. Until that call it keeps the old snapshot
(and its unwrapped data keys) referenced, as a call in flight would: after a purge they stay in
memory, unused, until the next data-plane call. Only successes are kept, so the size is bounded
by the configuration (targets, key versions), not by what callers send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from app.application.audit import AuditBuffer
from app.application.dataplane.item_path import ItemPath
from app.application.dataplane.items import Item, ItemResult
from app.application.dataplane.permits import Permit
from app.application.snapshot import Snapshot
from app.application.targets import Target
from app.domain import ciphertext as ct
from app.domain.justification import JustificationCode
from app.domain.values import Caller, Operation

MAX_CALLERS = 4096  # distinct callers remembered per snapshot; then it starts over

_CallerKey = tuple[str, frozenset[str], JustificationCode | None]
PermitTable = dict[tuple[str, str, str], dict[bytes, Permit]]
"""One caller's permits for one operation: by target (its ``key``), then by ciphertext header
(encrypts, which have none, by ``b""``)."""


class PermitCache:
    """The permit tables of each caller, for one snapshot at a time."""

    def __init__(self, max_callers: int = MAX_CALLERS) -> None:
        self._max_callers = max_callers
        self._snap: Snapshot | None = None
        self._callers: dict[_CallerKey, _CallerPermits] = {}

    def table(self, snap: Snapshot, caller: Caller, operation: Operation) -> PermitTable:
        if snap is not self._snap:  # the chain moved on: forget everything
            self._snap, self._callers = snap, {}
        # A justification's free text decides nothing and permits hold no audit of it: callers
        # that differ only in it (a request id per call) share one table.
        justification = caller.justification
        key = (caller.subject, caller.roles, None if justification is None else justification.code)
        permits = self._callers.get(key)
        if permits is None:
            if len(self._callers) >= self._max_callers:
                self._callers.clear()
            permits = self._callers[key] = _CallerPermits()
        # Compared, not looked up: hashing an Enum member runs Python code.
        if operation is Operation.ENCRYPT:
            return permits.encrypt
        return permits.decrypt if operation is Operation.DECRYPT else permits.rewrap


@dataclass(slots=True)
class _CallerPermits:
    encrypt: PermitTable = field(default_factory=dict)
    decrypt: PermitTable = field(default_factory=dict)
    rewrap: PermitTable = field(default_factory=dict)


def serve_batch(
    path: ItemPath,
    audit: AuditBuffer,
    operation: Operation,
    snap: Snapshot,
    caller: Caller,
    items: Sequence[Item],
    permits: PermitTable,
) -> list[ItemResult]:
    """One result per item, in order (see the module docstring)."""
    # How much of an item's data keys its permit: the header to open, nothing to encrypt.
    key_size = 0 if operation is Operation.ENCRYPT else ct.HEADER_SIZE
    served: dict[Permit, int] = {}  # not a Counter: building one runs Python code
    results: list[ItemResult] = []
    append = results.append
    last_target: Target | None = None  # items of a batch mostly share one Target object
    by_key: dict[bytes, Permit] = {}
    try:
        for item in items:
            data = item.data
            if item.target is not last_target:
                last_target = item.target
                by_key = permits.setdefault(last_target.key, {})
            key = data[:key_size]
            permit = by_key.get(key)
            if permit is not None:
                out = permit.serve(data, key, item.context)
                if out is not None:
                    served[permit] = served.get(permit, 0) + 1
                    # Positional: a frozen dataclass builds faster so, and this runs per item.
                    append(ItemResult(out, None, permit.key_version))
                    continue
            result, found = path.run(operation, snap, caller, item)
            if found is not None and key not in by_key:
                by_key[key] = found
            append(result)
    finally:
        extra = caller.audit_extra
        for permit, count in served.items():
            permit.account(audit, count, extra)
    return results
