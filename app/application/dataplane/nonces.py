"""What a call needs from the AES-GCM nonce budget before it is served (``budget``): the runs
of its items by target, and what the leases they will spend from lack, if anything."""

from __future__ import annotations

from collections.abc import Sequence

from app.application.budget import EncryptionBudget, Lease
from app.application.dataplane.item_path import ItemPath
from app.application.dataplane.items import Item
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
) -> dict[Lease, int] | None:
    """What runs of items (a target, how many) need from the GCM leases they will spend from,
    or ``None`` when every lease holds enough: the usual case, with nothing to await. A rewrap
    is counted as if it re-encrypted (over-reserving is harmless)."""
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
