"""The in-memory snapshot the data plane serves from: every module with its key versions,
policies and unwrapped data keys, the configuration, the EKEK and the KEK. ``KeyChain`` loads
and invalidates it; nothing here does I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from app.application.xks.directory import XksDirectory
from app.domain.alerts import Alert
from app.domain.ekms_config import ExternalInstanceKey, ExternalKmsConfig
from app.domain.errors import EkmsError, NotFound, Reason
from app.domain.external_keys import ExternalKey
from app.domain.justification import JustificationCode
from app.domain.keys import DataKey, KeyEncryptionKey
from app.domain.module import CryptoModule, EncryptedFieldConfig, ModuleKey
from app.domain.policy import Decision, ModuleAccessPolicy, evaluate
from app.domain.values import Caller, Operation

_DECISION_CACHE_LIMIT = 4096
_DecisionKey = tuple[str, frozenset[str], JustificationCode | None, Operation]


@dataclass(slots=True)
class ModuleView:
    """A module with its key versions, policies and unwrapped data keys, as cached."""

    module: CryptoModule
    keys: dict[int, ModuleKey]
    policies: tuple[ModuleAccessPolicy, ...]
    active: ModuleKey | None
    data_keys: dict[int, DataKey] = field(default_factory=dict)
    decisions: dict[_DecisionKey, Decision] = field(default_factory=dict)

    def decide(self, caller: Caller, operation: Operation) -> Decision:
        """The access decision for a caller and operation (cached per caller, justification
        code and operation: the free text decides nothing)."""
        justification = caller.justification
        code = None if justification is None else justification.code
        cache_key = (caller.subject, caller.roles, code, operation)
        decision = self.decisions.get(cache_key)
        if decision is None:
            decision = evaluate(self.policies, caller, operation, self.module.default_access)
            if len(self.decisions) >= _DECISION_CACHE_LIMIT:
                self.decisions.clear()
            self.decisions[cache_key] = decision
        return decision


@dataclass(slots=True)
class Snapshot:
    """Everything the data plane needs, loaded in one round and served from memory."""

    config: ExternalKmsConfig | None
    ekek: ExternalInstanceKey | None
    kek: KeyEncryptionKey | None
    modules: dict[str, ModuleView]
    modules_by_id: dict[uuid.UUID, ModuleView]
    fields: dict[tuple[str, str], EncryptedFieldConfig]
    fail_closed_at: float | None  # monotonic deadline while the external key is UNAVAILABLE
    kek_error: EkmsError | None = None
    open_alerts: tuple[Alert, ...] = ()
    keys: tuple[ExternalKey, ...] = ()  # every external key, the first first
    wraps: dict[uuid.UUID, ExternalInstanceKey] = field(default_factory=dict)  # by key id
    # The local KEK (modules with external_wrap=false), or why it cannot serve; both None
    # while no such module was ever made.
    local_kek: KeyEncryptionKey | None = None
    local_kek_error: EkmsError | None = None
    xks: XksDirectory = field(default_factory=XksDirectory)  # the external key stores

    def module_named(self, name: str) -> ModuleView:
        """The module view named ``name``, or ``NotFound``."""
        view = self.modules.get(name)
        if view is None:
            raise NotFound(f"module {name!r} does not exist", reason=Reason.MODULE_NOT_FOUND)
        return view
