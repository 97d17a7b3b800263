"""The KMIP provider: a key on a KMIP 1.4+ server (an HSM or key manager), over mutual TLS.

- ``connector``: ``KmipKmsConnector`` (settings ``EKMS_KMIP_*``, the pool) and ``KmipSettings``.
- ``kms``: ``KmipKms``, the ``KeyManagementService`` of one key (``key_id`` = the KMIP Unique
  Identifier): AES-GCM Encrypt/Decrypt on the server, State and ReKey links read back.
- ``_format``: the wrapped-key bytes and how the context is bound.
- ``_protocol`` / ``_ttlv``: the KMIP 1.4 messages used, and their TTLV encoding.
- ``_transport``: TLS connections, pooled, in worker threads (the protocol is blocking).
- ``_errors``: KMIP result reasons and network errors mapped to the ekms error tree.
"""

from app.infra.kms.kmip.connector import KMIP_PROVIDER, KmipKmsConnector, KmipSettings
from app.infra.kms.kmip.kms import KmipKms

__all__ = ["KMIP_PROVIDER", "KmipKms", "KmipKmsConnector", "KmipSettings"]
