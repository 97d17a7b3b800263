"""Ports: what the use cases need from the outside world, as Protocols named by role.

One module per concern, every name re-exported here (``from app.application.ports import X``):

- ``kms``: the external root key (``KeyManagementService``, ``KmsConnector``, ``StallMeter``);
- ``persistence``: the repositories, ``UnitOfWork`` and its factory (``audit_checkpoints``:
  the audit chain's signed checkpoints and their signing keys);
- ``system``: ``Clock`` and ``RandomSource`` (the only clock and randomness the use cases see);
- ``replicas``: ``ChangeFeed`` (tell every replica of a change), ``Leader`` (who runs jobs) and
  ``SyncLock`` (who runs the external key sync);
- ``identity``: ``TokenVerifier`` and the ``VerifiedToken`` it returns;
- ``telemetry``: ``CallMetrics``;
- ``xks``: the external key store's repositories, ``SigV4Verifier`` and ``XksHsm``.

Adapters live in ``app.infra`` (``AwsKms``, ``LocalKms``, ``SqlaUnitOfWork``, ``JwtVerifier``,
...); test doubles in ``tests/fakes.py`` (``InMemoryUnitOfWork``, ``FakeKms``, ``FakeClock``).
"""

from app.application.ports.audit_checkpoints import AuditCheckpointRepository, ChainHead
from app.application.ports.identity import TokenVerifier, VerifiedToken
from app.application.ports.kms import (
    ExternalKeyDescription,
    ExternalKeyRef,
    KeyManagementService,
    KmsConnector,
    KmsWrapped,
    RotationState,
    StallMark,
    StallMeter,
    check_key_to_wrap,
)
from app.application.ports.persistence import (
    AuditQuery,
    AuditRepository,
    ConfigRepository,
    ExternalKeyRepository,
    FieldConfigRepository,
    InstanceKeyRepository,
    KeyStatusRepository,
    KeyStore,
    LocalKeyRepository,
    ModuleKeyRepository,
    ModuleRepository,
    PolicyRepository,
    UnitOfWork,
    UnitOfWorkFactory,
)
from app.application.ports.replicas import ChangeFeed, Leader, SyncLock
from app.application.ports.system import Clock, RandomSource
from app.application.ports.telemetry import CallMetrics
from app.application.ports.xks import (
    SignedRequest,
    SigV4Claim,
    SigV4Verifier,
    XksHsm,
    XksKeyRepository,
    XksStoreRepository,
)

__all__ = [
    "SignedRequest",
    "SigV4Claim",
    "SigV4Verifier",
    "XksHsm",
    "XksKeyRepository",
    "XksStoreRepository",
    "ExternalKeyRepository",
    "AuditCheckpointRepository",
    "AuditQuery",
    "AuditRepository",
    "CallMetrics",
    "ChainHead",
    "ChangeFeed",
    "Clock",
    "ConfigRepository",
    "ExternalKeyDescription",
    "ExternalKeyRef",
    "FieldConfigRepository",
    "InstanceKeyRepository",
    "LocalKeyRepository",
    "KeyManagementService",
    "KeyStatusRepository",
    "KeyStore",
    "KmsConnector",
    "KmsWrapped",
    "Leader",
    "ModuleKeyRepository",
    "ModuleRepository",
    "PolicyRepository",
    "RandomSource",
    "RotationState",
    "StallMark",
    "StallMeter",
    "SyncLock",
    "TokenVerifier",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "VerifiedToken",
    "check_key_to_wrap",
]
