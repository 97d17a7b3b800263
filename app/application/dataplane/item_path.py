"""The item-by-item path: every check for one item, in order, and the one definition of what
the data plane answers. The batch loop (``shortcut``) sends here every item that no permit
serves, and keeps the permit each step returns.

The checks, in order: the target resolves, the chain may serve (external key state), the
module's access policies allow the operation, the module is published, the key version's state
allows it; then the value's own part (``permits``): the limits, the nonce budget, the cipher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from app.application.audit import AuditBuffer
from app.application.budget import EncryptionBudget
from app.application.dataplane.items import Item, ItemResult
from app.application.dataplane.permits import (
    DecryptPermit,
    EncryptPermit,
    Permit,
    RewrapPermit,
    SuccessAudit,
)
from app.application.keychain import KeyChain
from app.application.snapshot import ModuleView, Snapshot
from app.application.targets import Target
from app.domain import ciphertext as ct
from app.domain.audit import AuditResult
from app.domain.errors import (
    AccessDenied,
    DecryptionFailed,
    EkmsError,
    KeyUnavailable,
    NotFound,
    Reason,
)
from app.domain.keys import DataKey
from app.domain.module import ModuleKey
from app.domain.policy import Decision
from app.domain.values import Caller, ModuleState, Operation

_Step = Callable[[Snapshot, Caller, Item], tuple[ItemResult, Permit]]


class ItemPath:
    """Runs one item through every check; see the module docstring."""

    def __init__(
        self,
        chain: KeyChain,
        audit: AuditBuffer,
        budget: EncryptionBudget,
        nonce: Callable[[int], bytes],
    ) -> None:
        self._chain = chain
        self._audit = audit
        self._budget = budget
        self._nonce = nonce
        self._steps: dict[Operation, _Step] = {
            Operation.ENCRYPT: self.encrypt,
            Operation.DECRYPT: self.decrypt,
            Operation.REWRAP: self.rewrap,
        }

    def run(
        self, operation: Operation, snap: Snapshot, caller: Caller, item: Item
    ) -> tuple[ItemResult, Permit | None]:
        """The item's result and, on success, its permit; a failure is audited (aggregated)."""
        try:
            return self._steps[operation](snap, caller, item)
        except EkmsError as exc:
            self.audit_failure(operation, caller, item.target, exc)
            return ItemResult(error=exc), None

    def audit_failure(
        self, operation: Operation, caller: Caller, target: Target, exc: EkmsError
    ) -> None:
        """Audit a failed item (aggregated); a denial was audited where it was decided."""
        if isinstance(exc, AccessDenied):
            return
        # An unknown name is not echoed: callers must not be able to grow the audit keys.
        known = not isinstance(exc, NotFound)
        self._audit.record(
            actor=caller.subject,
            action=operation.value,
            result=AuditResult.FAILURE,
            module=target.module if known else None,
            target=str(target) if known else None,
            reason=exc.reason.value,
            extra=caller.audit_extra,
        )

    # --- the three operations: each raises its item's error --------------------------------------

    def encrypt(self, snap: Snapshot, caller: Caller, item: Item) -> tuple[ItemResult, Permit]:
        """Encrypt one value under the active key version."""
        target = item.target
        view = self.resolve(snap, target, for_encrypt=True)
        decision = self.authorize(snap, view, caller, Operation.ENCRYPT, target)
        audit = SuccessAudit.of(caller, decision, view, target)
        permit = self._sealer(snap, view, self.active_key(view), target, audit)
        blob = self._seal(permit, item.data, item.context)
        permit.account(self._audit, 1, caller.audit_extra)
        return ItemResult(data=blob, key_version=permit.key_version), permit

    def decrypt(self, snap: Snapshot, caller: Caller, item: Item) -> tuple[ItemResult, Permit]:
        """Decrypt one ciphertext."""
        _, permit, plaintext = self._open(snap, caller, item, Operation.DECRYPT)
        permit.account(self._audit, 1, caller.audit_extra)
        return ItemResult(data=plaintext, key_version=permit.key_version), permit

    def rewrap(self, snap: Snapshot, caller: Caller, item: Item) -> tuple[ItemResult, Permit]:
        """Re-encrypt one ciphertext under the active key version (unchanged if it is)."""
        view, opener, plaintext = self._open(snap, caller, item, Operation.REWRAP)
        active = self.active_key(view)
        if active.version == opener.key_version:
            permit = RewrapPermit(opener, None)
            result = ItemResult(data=item.data, key_version=opener.key_version)
        else:
            sealer = self._sealer(snap, view, active, item.target, opener.audit)
            permit = RewrapPermit(opener, sealer)
            blob = self._seal(sealer, plaintext, item.context)
            result = ItemResult(data=blob, key_version=sealer.key_version)
        del plaintext
        permit.account(self._audit, 1, caller.audit_extra)
        return result, permit

    # --- the checks -------------------------------------------------------------------------------

    def resolve(self, snap: Snapshot, target: Target, *, for_encrypt: bool) -> ModuleView:
        """The module a target names: itself, or its field configuration's."""
        if target.field is None:
            return snap.module_named(str(target.module))
        config = snap.fields.get((target.field.table, target.field.column))
        if config is None:
            raise NotFound(
                f"no field configuration for {target.field}", reason=Reason.FIELD_CONFIG_NOT_FOUND
            )
        if for_encrypt and not config.active:
            raise KeyUnavailable(
                f"field configuration for {target.field} is inactive",
                reason=Reason.FIELD_CONFIG_INACTIVE,
            )
        view = snap.modules_by_id.get(config.module_id)
        if view is None:  # pragma: no cover - the foreign key prevents it
            raise NotFound("the field's module does not exist", reason=Reason.MODULE_NOT_FOUND)
        return view

    def authorize(
        self, snap: Snapshot, view: ModuleView, caller: Caller, operation: Operation, target: Target
    ) -> Decision:
        """The chain serves, the module's policies allow ``operation``, the module is published."""
        self._chain.check_serving(snap, view.module)
        decision = view.decide(caller, operation)
        name = view.module.name
        if not decision.allowed:
            self._deny(caller, operation, name, target, decision)
        if view.module.state is not ModuleState.PUBLISHED:
            raise KeyUnavailable(f"module {name!r} is a draft", reason=Reason.MODULE_NOT_PUBLISHED)
        return decision

    def _deny(
        self, caller: Caller, operation: Operation, name: str, target: Target, decision: Decision
    ) -> NoReturn:
        """Audit a denial (aggregated) and raise it."""
        reason = Reason.JUSTIFICATION_REQUIRED if decision.unjustified else Reason.MAP_REJECTED
        self._audit.record(
            actor=caller.subject,
            action=operation.value,
            result=AuditResult.DENIED,
            module=name,
            target=str(target),
            reason=reason.value,
            decided_by=str(decision.decided_by) if decision.decided_by else "default",
            extra=caller.audit_extra,
        )
        if decision.unjustified:
            raise AccessDenied(
                f"{operation.value} on module {name!r} needs a justification "
                "(x-ekms-justification) with a reason code the module's policy allows",
                reason=reason,
            )
        raise AccessDenied(f"{operation.value} on module {name!r} is not allowed for this caller")

    def active_key(self, view: ModuleView) -> ModuleKey:
        """The module's active key version; ``KeyUnavailable`` (NO_ACTIVE_KEY) when it has none."""
        key = view.active
        if key is None:
            raise KeyUnavailable(
                f"module {view.module.name!r} has no active key version",
                reason=Reason.NO_ACTIVE_KEY,
            )
        return key

    def _unlock(
        self, snap: Snapshot, caller: Caller, target: Target, header: ct.Header, op: Operation
    ) -> tuple[ModuleView, Decision, DataKey]:
        """The checks of an open that depend on the header, not on the value."""
        view = snap.modules_by_id.get(header.module_id)
        declared = self.resolve(snap, target, for_encrypt=False)
        if view is None or (target.module is not None and view is not declared):
            raise DecryptionFailed()
        decision = self.authorize(snap, view, caller, op, target)
        key = view.keys.get(header.key_version)
        if key is None or header.algorithm is not view.module.algorithm:
            raise DecryptionFailed()
        key.ensure_can_decrypt()
        return view, decision, self._chain.data_key(snap, view, key)

    # --- building permits, and the value's part ---------------------------------------------------

    def _sealer(
        self, snap: Snapshot, view: ModuleView, key: ModuleKey, target: Target, audit: SuccessAudit
    ) -> EncryptPermit:
        data_key = self._chain.data_key(snap, view, key)
        lease = self._budget.lease_for(view)
        return EncryptPermit(data_key, target.binding, lease, self._nonce, audit)

    def _seal(self, permit: EncryptPermit, plaintext: bytes, context: bytes) -> bytes:
        ct.check_plaintext(plaintext)
        ct.check_context(context)
        blob = permit.serve(plaintext, b"", context)
        if blob is None:  # within the limits: only an empty lease refuses
            lease = permit.lease
            raise lease.refusal() if lease is not None else RuntimeError("no nonce, no lease")
        return blob

    def _open(
        self, snap: Snapshot, caller: Caller, item: Item, operation: Operation
    ) -> tuple[ModuleView, DecryptPermit, bytes]:
        ct.check_context(item.context)
        parsed = ct.parse(item.data)
        header = parsed.header
        view, decision, data_key = self._unlock(snap, caller, item.target, header, operation)
        audit = SuccessAudit.of(caller, decision, view, item.target)
        min_size = ct.min_size(header.algorithm)
        permit = DecryptPermit(data_key, item.target.binding, header, audit, min_size)
        plaintext = permit.serve(item.data, parsed.header_bytes, item.context)
        if plaintext is None:
            raise DecryptionFailed()
        return view, permit, plaintext
