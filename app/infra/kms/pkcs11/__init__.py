"""The ``pkcs11`` provider: a key in any PKCS#11 token (an HSM; SoftHSM2 in the tests).

- ``kms``: ``Pkcs11KmsConnector`` (one token, a bounded session pool) and ``Pkcs11Kms`` (one
  key, named by its CKA_LABEL), behind the ``KeyManagementService`` port.
- ``config``: ``Pkcs11Config`` (library, token label, user PIN) and ``resolve_pin``.
- ``blob``: the wrapped format (AES-GCM in the token, the context bound as AAD).
- ``keys``: the key's versions (CKA_ID), its states, rotation, the synchronous calls.
- ``pool``: the session pool; ``errors``: python-pkcs11 errors mapped to the ekms tree.
"""

from app.infra.kms.pkcs11.config import DEFAULT_LIBRARY, Pkcs11Config, resolve_pin
from app.infra.kms.pkcs11.kms import PROVIDER, Pkcs11Kms, Pkcs11KmsConnector

__all__ = [
    "DEFAULT_LIBRARY",
    "PROVIDER",
    "Pkcs11Config",
    "Pkcs11Kms",
    "Pkcs11KmsConnector",
    "resolve_pin",
]
