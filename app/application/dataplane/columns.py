"""A batch as columns, served close to the cipher.

An adapter that holds a batch as parsed messages hands it over column by column
(``ItemColumns``: the data and the contexts as lists of bytes, one target for all or one per
item) and gets the results back the same way (``ColumnResults``), so nothing builds an ``Item``
or an ``ItemResult`` for an item that is served.

Per run of items with one target: the permit for the first item's kind (``permits``; found by
the item path for that first item when the caller has none) serves the whole run at once
(``serve_many``). Whatever it leaves (another ciphertext header, a value over the limits, a
ciphertext that does not verify, a lease too small for the run) goes on item by item, in
order, exactly as ``shortcut.serve_batch`` does. So every result and audit event is what the
item path alone gives; ``tests/unit/test_crypto_batches.py`` compares them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.application.audit import AuditBuffer
from app.application.dataplane.item_path import ItemPath
from app.application.dataplane.items import Item, ItemResult
from app.application.dataplane.permits import Permit
from app.application.dataplane.shortcut import PermitTable
from app.application.snapshot import Snapshot
from app.application.targets import Target
from app.domain import ciphertext as ct
from app.domain.errors import EkmsError
from app.domain.values import Caller, Operation

Run = tuple[int, int, Target | EkmsError]
"""Items ``start:stop`` of a batch, and their target (or why they have none)."""


@dataclass(frozen=True, slots=True)
class ItemColumns:
    """A batch's items: item ``i`` is ``(target, data[i], contexts[i])``. ``targets`` is the
    one target of every item, or each item's own (an ``EkmsError`` for an item that named
    none or a malformed one: that is its result, and it is not served)."""

    targets: Target | Sequence[Target | EkmsError]
    data: Sequence[bytes]
    contexts: Sequence[bytes]

    def runs(self) -> list[Run]:
        """The items as runs of one target, in order."""
        targets, n = self.targets, len(self.data)
        if isinstance(targets, Target):
            return [(0, n, targets)] if n else []
        if len(targets) != n or len(self.contexts) != n:
            raise ValueError("a batch has one target and one context per value")
        runs: list[Run] = []
        start = 0
        for i in range(1, n + 1):
            if i == n or not _same(targets[i], targets[start]):
                runs.append((start, i, targets[start]))
                start = i
        return runs


def _same(a: Target | EkmsError, b: Target | EkmsError) -> bool:
    return a is b or (isinstance(a, Target) and a == b)


@dataclass(frozen=True, slots=True)
class ColumnResults:
    """One answer per item: ``data[i]`` when it succeeded (with ``key_versions[i]``), else
    ``errors[i]``."""

    data: list[bytes | None]
    key_versions: list[int]
    errors: dict[int, EkmsError]


def refused(batch: ItemColumns, runs: Sequence[Run]) -> ColumnResults:
    """Results with only the errors of the runs that have no target (nothing served yet)."""
    n = len(batch.data)
    results = ColumnResults([None] * n, [0] * n, {})
    for start, stop, target in runs:
        if isinstance(target, EkmsError):
            results.errors.update(dict.fromkeys(range(start, stop), target))
    return results


def serve_columns(
    path: ItemPath,
    audit: AuditBuffer,
    operation: Operation,
    snap: Snapshot,
    caller: Caller,
    batch: ItemColumns,
    runs: Sequence[Run],
    permits: PermitTable,
) -> ColumnResults:
    """One result per item (see the module docstring)."""
    results = refused(batch, runs)
    served: dict[Permit, int] = {}
    try:
        for start, stop, target in runs:
            if isinstance(target, Target):
                _Run(path, operation, snap, caller, batch, results, served).serve(
                    target, permits.setdefault(target.key, {}), start, stop
                )
    finally:
        for permit, count in served.items():
            permit.account(audit, count, caller.audit_extra)
    return results


def serve_items(
    path: ItemPath,
    operation: Operation,
    snap: Snapshot,
    caller: Caller,
    batch: ItemColumns,
    runs: Sequence[Run],
) -> ColumnResults:
    """Every item through the item path, nothing remembered (the chain is failing closed)."""
    results = refused(batch, runs)
    for start, stop, target in runs:
        if isinstance(target, Target):
            for i in range(start, stop):
                item = Item(target, batch.data[i], batch.contexts[i])
                _store(results, i, path.run(operation, snap, caller, item)[0])
    return results


class _Run:
    """Serves one run of a batch into its results."""

    __slots__ = ("batch", "caller", "operation", "path", "results", "served", "snap")

    def __init__(
        self,
        path: ItemPath,
        operation: Operation,
        snap: Snapshot,
        caller: Caller,
        batch: ItemColumns,
        results: ColumnResults,
        served: dict[Permit, int],
    ) -> None:
        self.path, self.operation, self.snap, self.caller = path, operation, snap, caller
        self.batch, self.results, self.served = batch, results, served

    def serve(self, target: Target, by_key: dict[bytes, Permit], start: int, stop: int) -> None:
        data, contexts = self.batch.data, self.batch.contexts
        out, versions = self.results.data, self.results.key_versions
        # How much of an item's data keys its permit: the header to open, nothing to encrypt.
        key_size = 0 if self.operation is Operation.ENCRYPT else ct.HEADER_SIZE
        key = data[start][:key_size]
        permit = by_key.get(key)
        begin = start
        if permit is None:  # the first of its kind: the item path decides, and finds a permit
            permit = self._one(target, by_key, key, start)
            begin = start + 1
        tried: Permit | None = None  # served what it could of the run: no use asking again
        if permit is not None and begin < stop:
            done = permit.serve_many((data, contexts), out, begin, stop)
            if done:
                tried = permit
                self.served[permit] = self.served.get(permit, 0) + done
                versions[begin:stop] = [permit.key_version] * (stop - begin)
            if done == stop - begin:
                return
        errors = self.results.errors
        for i in range(begin, stop):  # what the permit left: item by item, in order
            if out[i] is not None or i in errors:
                continue
            value = data[i]
            key = value[:key_size]
            permit = by_key.get(key)
            if permit is not None and permit is not tried:  # ``tried`` could not tell it
                answer = permit.serve(value, key, contexts[i])
                if answer is not None:
                    self.served[permit] = self.served.get(permit, 0) + 1
                    out[i], versions[i] = answer, permit.key_version
                    continue
            self._one(target, by_key, key, i)

    def _one(
        self, target: Target, by_key: dict[bytes, Permit], key: bytes, i: int
    ) -> Permit | None:
        """Item ``i`` through the item path; the permit it found, kept for its kind."""
        item = Item(target, self.batch.data[i], self.batch.contexts[i])
        result, found = self.path.run(self.operation, self.snap, self.caller, item)
        _store(self.results, i, result)
        if found is not None and key not in by_key:
            by_key[key] = found
        return found


def _store(results: ColumnResults, i: int, result: ItemResult) -> None:
    if result.error is not None:
        results.errors[i] = result.error
        return
    results.data[i] = result.data
    results.key_versions[i] = result.key_version or 0
