"""A bounded LRU of verified tokens, keyed by the token's SHA-256 (never the token itself)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from app.application.ports import VerifiedToken


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


class VerifiedTokenCache:
    """Holds at most ``size`` tokens; ``size == 0`` disables caching.

    The cache does not decide validity: the verifier re-checks each hit's time window against the
    clock and calls ``drop`` for an expired one. Entries nobody asks for again age out by LRU.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, VerifiedToken] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes) -> VerifiedToken | None:
        entry = self._entries.get(digest)
        if entry is not None:
            self._entries.move_to_end(digest)
        return entry

    def put(self, digest: bytes, token: VerifiedToken) -> None:
        if self._size == 0:
            return
        self._entries[digest] = token
        self._entries.move_to_end(digest)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def drop(self, digest: bytes) -> None:
        self._entries.pop(digest, None)
