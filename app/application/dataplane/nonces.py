"""What a call needs from the AES-GCM nonce budget before it is served (``budget``): the runs
of its items by target, and what the leases they will spend from lack, if anything."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.application.budget import EncryptionBudget, Lease
from app.application.dataplane.item_path import ItemPath
from app.application.dataplane.items import Item
from app.application.dataplane.permits import EncryptPermit, RewrapPermit
from app.application.dataplane.shortcut import PermitTable
from app.application.snapshot import Snapshot
from app.application.targets import Target
from app.domain.errors import EkmsError


def nonce_shortfall(
    path: ItemPath,
    budget: EncryptionBudget,
    snap: Snapshot,
    runs: Sequence[tuple[Target, int]],
    *,
    for_encrypt: bool,
    permits: PermitTable | None = None,
) -> dict[Lease, int] | None:
    """What runs of items (a target, how many) need from the GCM leases they will spend from,
    or ``None`` when every lease holds enough: the usual case, with nothing to await. A rewrap
    is counted as if it re-encrypted (over-reserving is harmless).

    ``permits`` (the caller's table for this snapshot and operation) short-circuits it: when
    every run's target has a permit whose lease holds enough, nothing is resolved (the permit
    was built from the same snapshot, so its lease is the one ``resolve`` would find)."""
    if permits is not None and _permits_hold(permits, runs):
        return None
    needs: dict[Lease, int] = {}
    for target, count in runs:
        try:
            view = path.resolve(snap, target, for_encrypt=for_encrypt)
            lease = budget.lease_for(view)
        except EkmsError:
            continue  # the items fail on their own path, with their own error
        if lease is not None:
            needs[lease] = needs.get(lease, 0) + count
    for held, need in needs.items():
        if held.left < need and not held.exhausted:
            return needs
    return None


def _permits_hold(permits: PermitTable, runs: Sequence[tuple[Target, int]]) -> bool:
    """Every run has a permit that tells its lease, and every such lease holds its runs."""
    if len(runs) == 1:  # a single call, or a batch for one target: no sums
        target, count = runs[0]
        found, lease = _lease_of(permits.get(target.key))
        return found and (lease is None or lease.left >= count)
    needs: dict[Lease, int] = {}
    for target, count in runs:
        found, lease = _lease_of(permits.get(target.key))
        if not found:
            return False
        if lease is not None:
            needs[lease] = needs.get(lease, 0) + count
    return all(lease.left >= need for lease, need in needs.items())


def _lease_of(by_key: dict[bytes, Any] | None) -> tuple[bool, Lease | None]:
    """Whether a target's permits tell the lease its encrypts spend from, and that lease
    (``None``: AES-SIV, no budget). A rewrap permit whose header is already the active
    version's has no sealer and tells nothing."""
    if not by_key:
        return False, None
    for permit in by_key.values():
        if type(permit) is EncryptPermit:
            return True, permit.lease
        if type(permit) is RewrapPermit and permit.sealer is not None:
            return True, permit.sealer.lease
    return False, None


def target_runs(items: Sequence[Item]) -> list[tuple[Target, int]]:
    """The items' targets as runs (items of a batch mostly share one Target object)."""
    runs: list[tuple[Target, int]] = []
    last: Target | None = None
    count = 0
    for item in items:
        if item.target is not last:
            if last is not None:
                runs.append((last, count))
            last, count = item.target, 0
        count += 1
    if last is not None:
        runs.append((last, count))
    return runs
