"""Blind indexes: ``ComputeMac`` and ``VerifyMac``, one value at a time, through the item
path's checks (``item_path``), authorised as the MAP operation ``mac``.

Compute: the target resolves, the chain serves, the module's policies allow ``mac``, the module
is published, and the key version may serve: the active one, or the one the caller names (to
search an index whose entries were made before a rotation). Verify: the MAC's header names its
module (it must be the target's) and key version, then the same checks; the comparison is in
constant time (``app.domain.mac``). A MAC that does not verify, for any reason the header does
not already tell, is the one opaque ``MacMismatch``.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.application.audit import AuditBuffer
from app.application.dataplane.item_path import ItemPath
from app.application.dataplane.items import Item
from app.application.dataplane.permits import SuccessAudit
from app.application.keychain import KeyChain
from app.application.snapshot import ModuleView, Snapshot
from app.domain import ciphertext as ct
from app.domain import mac as mac_format
from app.domain.errors import EkmsError, MacMismatch, NotFound, Reason
from app.domain.module import ModuleKey
from app.domain.values import Caller, Operation


@dataclass(frozen=True, slots=True)
class MacResult:
    """A MAC (format v1: it carries its module and key version) and that key version."""

    mac: bytes
    key_version: int


class MacPath:
    """Computes and verifies blind-index MACs; see the module docstring."""

    def __init__(self, path: ItemPath, chain: KeyChain, audit: AuditBuffer) -> None:
        self._path = path
        self._chain = chain
        self._audit = audit

    def compute(
        self, snap: Snapshot, caller: Caller, item: Item, key_version: int | None
    ) -> MacResult:
        """The MAC of ``item.data`` for its target and context; its error is raised."""
        path, target = self._path, item.target
        try:
            view = path.resolve(snap, target, for_encrypt=key_version is None)
            decision = path.authorize(snap, view, caller, Operation.MAC, target)
            key = path.active_key(view) if key_version is None else _version(view, key_version)
            key.ensure_can_decrypt()
            ct.check_plaintext(item.data)
            ct.check_context(item.context)
            data_key = self._chain.data_key(snap, view, key)
            tag = data_key.mac(target.binding, item.context, item.data)
        except EkmsError as exc:
            path.audit_failure(Operation.MAC, caller, target, exc)
            raise
        SuccessAudit.of(caller, decision, view, target).record(self._audit, 1, caller.audit_extra)
        return MacResult(tag, key.version)

    def verify(self, snap: Snapshot, caller: Caller, item: Item, mac: bytes) -> int:
        """The key version of ``mac`` when it is ``item.data``'s MAC; else ``MacMismatch``."""
        path, target = self._path, item.target
        try:
            ct.check_context(item.context)
            declared = path.resolve(snap, target, for_encrypt=False)
            header = mac_format.parse(mac)
            view = snap.modules_by_id.get(header.module_id)
            if view is not declared:
                raise MacMismatch()
            decision = path.authorize(snap, view, caller, Operation.MAC, target)
            key = view.keys.get(header.key_version)
            if key is None:
                raise MacMismatch()
            key.ensure_can_decrypt()
            self._chain.data_key(snap, view, key).verify_mac(
                mac, target.binding, item.context, item.data
            )
        except EkmsError as exc:
            path.audit_failure(Operation.MAC, caller, target, exc)
            raise
        SuccessAudit.of(caller, decision, view, target).record(self._audit, 1, caller.audit_extra)
        return key.version


def _version(view: ModuleView, version: int) -> ModuleKey:
    key = view.keys.get(version)
    if key is None:
        raise NotFound(
            f"module {view.module.name!r} has no key version {version}",
            reason=Reason.KEY_VERSION_NOT_FOUND,
        )
    return key
