"""The instance's local KEK: the key that wraps the DEKs of modules with ``external_wrap=false``.

It is wrapped by the local root key (the ``local`` provider), or by a key of a provider the
operator chose (``EKMS_LOCAL_KEK_PROVIDER``: ``pkcs11``, ``kmip``), not by the external key
chain, so the external key's state (Disabled, Pending deletion, Unavailable) does not stop
those modules; and so the customer cannot revoke them by disabling the external key. One per
instance, created on first need, replaced by a rotation, never deleted (a DEK row names it).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

# The local root key's reference for it (bound into the wrapped form by the local adapter).
LOCAL_KEK_KEY_ID = "ekms-local-kek"


@dataclass(slots=True)
class LocalInstanceKey:
    """The local KEK as stored: wrapped under the local root key, named by its fingerprint."""

    id: uuid.UUID
    wrapped_kek: bytes = field(repr=False)
    key_name: str
    encryption_context: Mapping[str, str]
    fingerprint: str
    created_at: datetime


# Where the context names the protector (``EKMS_LOCAL_KEK_PROVIDER``) when it is not the local
# root key; a row without them (the default, and every row before the setting) is the local one.
PROTECTOR = "ekms:protector"
PROTECTOR_KEY = "ekms:protector-key"


def local_kek_context(
    instance_id: str, kek_id: uuid.UUID, protector: tuple[str, str] | None = None
) -> dict[str, str]:
    """The context the local KEK is wrapped under (another purpose than the external KEK's);
    ``protector`` (provider, key id) when another provider than the local root key wraps it.
    The row keeps it, so a row is unwrapped by the protector it was made under."""
    context = {
        "ekms:instance": instance_id,
        "ekms:purpose": "local-kek",
        "ekms:kek-id": str(kek_id),
    }
    if protector is not None:
        context[PROTECTOR], context[PROTECTOR_KEY] = protector
    return context
