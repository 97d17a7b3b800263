"""Signed checkpoints of the audit hash chain: a head (position, row, hash) signed with Ed25519.

Every N rows or T seconds ekms signs the chain's head with a key of its own (the audit signing
key, sealed under the KEK). A customer who keeps the exported checkpoints outside the database
can tell later that the chain they describe is still there: a row rewritten and the chain
re-hashed after it, or the tail cut off, no longer matches a checkpoint signed before.

The signed bytes (``payload``) are UTF-8 JSON, sorted keys, no whitespace (as the chain's
canonical rows, docs/audit.md), with exactly these members::

    {"at": "<UTC, six fraction digits>Z", "count": <rows since the previous checkpoint>,
     "event_id": "<the head row's id>", "format": "ekms.audit.checkpoint.v1",
     "hash": "<the head row's hash, 64 hex>", "key_id": "<signing key id>", "seq": <position>}

``count`` makes the series contiguous: a checkpoint's ``seq - count`` is the previous one's
``seq`` (0 for the first), so a checkpoint deleted from the middle shows as a gap.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FORMAT = "ekms.audit.checkpoint.v1"
SEED_SIZE = 32


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed chain head, as stored and exported."""

    seq: int
    event_id: uuid.UUID
    hash: bytes
    at: datetime
    count: int
    key_id: uuid.UUID
    signature: bytes = field(default=b"")

    def payload(self) -> bytes:
        """The bytes the signature covers."""
        document = {
            "at": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "count": self.count,
            "event_id": str(self.event_id),
            "format": FORMAT,
            "hash": self.hash.hex(),
            "key_id": str(self.key_id),
            "seq": self.seq,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """The audit signing key as stored: its seed sealed under the KEK, its public key in clear."""

    id: uuid.UUID
    kek_id: uuid.UUID
    wrapped_seed: bytes = field(repr=False)
    public_key: bytes  # 32 raw bytes
    created_at: datetime


def seal_purpose(key_id: uuid.UUID, public_key: bytes) -> bytes:
    """What the seal binds the seed to: the key's id and its public key, so a public key
    swapped in the database no longer opens with the seed (see ``KeyEncryptionKey.seal``)."""
    return b"audit-signing-key|" + key_id.bytes + public_key


class AuditSigner:
    """An unwrapped audit signing key: signs checkpoints. The seed is never exposed."""

    __slots__ = ("_private", "key_id", "public_key")

    def __init__(self, key_id: uuid.UUID, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise ValueError("an audit signing key seed is 32 bytes")
        self.key_id = key_id
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = public_bytes(self._private.public_key())

    def __repr__(self) -> str:
        return f"AuditSigner(key_id={self.key_id})"

    def sign(self, checkpoint: Checkpoint) -> Checkpoint:
        """``checkpoint`` with its signature (its ``key_id`` must be this key's)."""
        if checkpoint.key_id != self.key_id:
            raise ValueError("the checkpoint names another signing key")
        signature = self._private.sign(checkpoint.payload())
        return Checkpoint(
            checkpoint.seq,
            checkpoint.event_id,
            checkpoint.hash,
            checkpoint.at,
            checkpoint.count,
            checkpoint.key_id,
            signature,
        )


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def signature_holds(public_key: bytes, checkpoint: Checkpoint) -> bool:
    """Whether ``checkpoint``'s signature verifies under ``public_key`` (32 raw bytes)."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            checkpoint.signature, checkpoint.payload()
        )
    except (InvalidSignature, ValueError):
        return False
    return True
