"""Permits: what an item that passed every check found, so that the caller's next items of the
same kind skip the checks and only do their own part (the size test, the cipher, the count).

Every check depends only on the snapshot, the caller, the operation, the target and (to open)
the 22-byte ciphertext header, never on the value: so a permit is valid for exactly that, and
``shortcut`` keeps it for as long as the chain serves the same snapshot.

``serve`` is the value's own part, and the item path calls it too, after its checks: the output
bytes, or ``None`` when the permit cannot tell the item's result (a value or context over the
limits, no nonce left in the lease, a ciphertext that does not verify). The item path then
gives that result, with its error and its audit. ``account`` audits ``count`` items served, with
the calling caller's justification (``extra``).

``serve_many`` is ``serve`` for the items ``start:stop`` of a batch's columns at once (the
domain's ``DataKey.open_many``/``seal_many``: the associated-data prefix built once, nothing
built per item but its bytes): it fills ``out[i]`` for the items it can tell and leaves the
others ``None`` for the item path. An encrypting permit serves none unless its lease holds a
nonce for every item of the range: which items an empty lease refuses depends on their order,
and only the item-by-item loop keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.application.audit import AuditBuffer, Extra
from app.application.budget import Lease
from app.application.snapshot import ModuleView
from app.application.targets import Target
from app.domain import ciphertext as ct
from app.domain.audit import AuditResult
from app.domain.errors import DecryptionFailed
from app.domain.keys import DataKey
from app.domain.policy import Decision
from app.domain.values import Caller

NONCE_SIZE = ct.GCM_NONCE_SIZE

Columns = tuple[Sequence[bytes], Sequence[bytes]]
"""A batch's items, column by column: their data (plaintexts or ciphertexts) and contexts."""


@dataclass(frozen=True, slots=True)
class SuccessAudit:
    """How a success is audited: the aggregation key of ``AuditBuffer.record``."""

    actor: str
    action: str
    module: str
    target: str
    decided_by: str

    @classmethod
    def of(
        cls, caller: Caller, decision: Decision, view: ModuleView, target: Target
    ) -> SuccessAudit:
        decided_by = str(decision.decided_by) if decision.decided_by else "default"
        return cls(
            caller.subject, decision.operation.value, view.module.name, str(target), decided_by
        )

    def record(self, audit: AuditBuffer, count: int = 1, extra: Extra = ()) -> None:
        """``extra``: the calling ``Caller.audit_extra`` (its justification), which the permit
        does not hold: callers that differ only in a justification's text share permits."""
        audit.record(
            actor=self.actor,
            action=self.action,
            result=AuditResult.SUCCESS,
            module=self.module,
            target=self.target,
            decided_by=self.decided_by,
            count=count,
            extra=extra,
        )


class Permit(Protocol):
    """What the batch loop needs of a permit (see the module docstring)."""

    @property
    def key_version(self) -> int:
        """The key version of what ``serve`` returns."""

    def serve(self, data: bytes, header: bytes, context: bytes) -> bytes | None: ...

    def serve_many(self, columns: Columns, out: list[bytes | None], start: int, stop: int) -> int:
        """Fill ``out[start:stop]`` where it can (see the module docstring); how many it did."""

    def account(self, audit: AuditBuffer, count: int, extra: Extra) -> None: ...


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: counted per batch
class EncryptPermit:
    """Leave to encrypt for one target: under the module's active key version."""

    data_key: DataKey
    binding: bytes
    lease: Lease | None  # AES-GCM: the nonce budget it spends from; AES-SIV: None
    nonce: Callable[[int], bytes]
    audit: SuccessAudit
    key_version: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_version", self.data_key.version)

    def serve(self, data: bytes, header: bytes, context: bytes) -> bytes | None:
        """The ciphertext of ``data`` (``header`` is unused: encrypts are keyed by target)."""
        if not ct.within_limits(data, context):
            return None
        lease = self.lease
        if lease is None:
            nonce = b""
        elif lease.left > 0:
            lease.left -= 1
            nonce = self.nonce(NONCE_SIZE)
        else:
            return None
        return self.data_key.encrypt(data, self.binding, context, nonce)

    def serve_many(self, columns: Columns, out: list[bytes | None], start: int, stop: int) -> int:
        data, contexts = columns
        lease = self.lease
        if lease is None:
            return self.data_key.seal_many(self.binding, data, contexts, b"", out, start, stop)
        if lease.left < stop - start:
            return 0
        nonces = self.nonce(NONCE_SIZE * (stop - start))
        sealed = self.data_key.seal_many(self.binding, data, contexts, nonces, out, start, stop)
        lease.left -= sealed
        return sealed

    def account(self, audit: AuditBuffer, count: int, extra: Extra) -> None:
        audit.count_usage(self.data_key.module_id, self.data_key.version, count)
        self.audit.record(audit, count, extra)


@dataclass(frozen=True, slots=True, eq=False)
class DecryptPermit:
    """Leave to open ciphertexts with one header for one target."""

    data_key: DataKey
    binding: bytes
    header: ct.Header
    audit: SuccessAudit
    min_size: int  # shorter ciphertexts do not parse: the item path refuses them
    key_version: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_version", self.data_key.version)

    def serve(self, data: bytes, header: bytes, context: bytes) -> bytes | None:
        """The plaintext of ``data``, whose first bytes are ``header``."""
        if len(data) < self.min_size or not ct.within_limits(b"", context):
            return None
        sealed = ct.Ciphertext(self.header, header, data[ct.HEADER_SIZE :])
        try:
            return self.data_key.decrypt(sealed, self.binding, context)
        except DecryptionFailed:
            return None

    def serve_many(self, columns: Columns, out: list[bytes | None], start: int, stop: int) -> int:
        data, contexts = columns
        return self.data_key.open_many(self.binding, data, contexts, out, start, stop)

    def account(self, audit: AuditBuffer, count: int, extra: Extra) -> None:
        self.audit.record(audit, count, extra)


@dataclass(frozen=True, slots=True, eq=False)
class RewrapPermit:
    """Leave to rewrap ciphertexts with one header for one target: open, then seal again."""

    opener: DecryptPermit  # audited as a rewrap
    sealer: EncryptPermit | None  # None: the header names the active version already
    key_version: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_version", (self.sealer or self.opener).key_version)

    def serve(self, data: bytes, header: bytes, context: bytes) -> bytes | None:
        """``data`` under the active version (``data`` itself when it is under it already)."""
        plaintext = self.opener.serve(data, header, context)
        if plaintext is None or self.sealer is None:
            return None if plaintext is None else data
        return self.sealer.serve(plaintext, b"", context)

    def serve_many(self, columns: Columns, out: list[bytes | None], start: int, stop: int) -> int:
        data, contexts = columns
        sealer = self.sealer
        lease = sealer.lease if sealer is not None else None
        if lease is not None and lease.left < stop - start:
            return 0
        opened: list[bytes | None] = [None] * len(data)
        if not self.opener.serve_many(columns, opened, start, stop):
            return 0
        index = [i for i in range(start, stop) if opened[i] is not None]
        if sealer is None:  # under the active version already: the answer is the input
            for i in index:
                out[i] = data[i]
            return len(index)
        plaintexts = [opened[i] or b"" for i in index]
        del opened
        sealed: list[bytes | None] = [None] * len(index)
        done = sealer.serve_many((plaintexts, [contexts[i] for i in index]), sealed, 0, len(index))
        del plaintexts
        for i, blob in zip(index, sealed, strict=True):
            out[i] = blob  # None where the sealer could not: the item path answers it
        return done

    def account(self, audit: AuditBuffer, count: int, extra: Extra) -> None:
        if self.sealer is not None:
            key = self.sealer.data_key
            audit.count_usage(key.module_id, key.version, count)
        self.opener.audit.record(audit, count, extra)
