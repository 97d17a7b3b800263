"""A JWKS endpoint as a source of verifying keys, fetched lazily and refreshed sparingly.

Refresh policy:

- the key set is fetched on first use and again once it is ``refresh_seconds`` old;
- a ``kid`` we do not know triggers an early fetch (the issuer may have rotated keys), but at
  most once per ``min_refresh_seconds``, so a stream of made-up ``kid``s cannot make us hammer
  the endpoint; failed fetches count against the same limit;
- concurrent callers share one fetch (a lock, and the condition is re-checked under it);
- a failed fetch keeps the keys we have; a successful fetch replaces them entirely, so a key the
  issuer withdrew stops verifying new tokens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import structlog

from app.application.ports import Clock
from app.domain.errors import Unauthenticated
from app.infra.tokens._keys import VerifyingKey, public_key_from_jwk

MAX_JWKS_BYTES = 256 * 1024
FETCH_TIMEOUT_SECONDS = 5.0

log = structlog.get_logger(__name__)


class JwksFetchError(Exception):
    """The endpoint could not be reached or did not answer with a JWKS."""


class JwksKeySource:
    """Keys by ``(kid, algorithm)`` from one JWKS URL."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock,
        refresh_seconds: float,
        min_refresh_seconds: float,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._http = http_client
        self._owns_http = http_client is None
        self._keys: dict[tuple[str, str], VerifyingKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key_for(self, kid: str, algorithm: str) -> VerifyingKey:
        """The ``algorithm`` key named ``kid``; ``Unauthenticated`` if the JWKS lacks it."""
        wanted = (kid, algorithm)
        if self._is_stale():
            await self._refresh_if(self._is_stale)
        key = self._keys.get(wanted)
        if key is None:
            await self._refresh_if(lambda: wanted not in self._keys and self._may_fetch())
            key = self._keys.get(wanted)
        if key is not None:
            return key
        if self._fetched_at is None:
            raise Unauthenticated("token signing keys are unavailable")
        raise Unauthenticated("token signing key is not recognised")

    async def aclose(self) -> None:
        if self._http is not None and self._owns_http:
            await self._http.aclose()
            self._http = None

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _may_fetch(self) -> bool:
        attempted = self._attempted_at
        return attempted is None or self._now() - attempted >= self._min_refresh_seconds

    def _is_stale(self) -> bool:
        fetched = self._fetched_at
        too_old = fetched is None or self._now() - fetched >= self._refresh_seconds
        return too_old and self._may_fetch()

    async def _refresh_if(self, still_needed: Callable[[], bool]) -> None:
        async with self._lock:
            if not still_needed():
                return  # another caller refreshed while we waited
            self._attempted_at = self._now()
            self.fetches += 1
            try:
                keys = await self._fetch()
            except JwksFetchError as exc:
                log.warning("jwks.fetch_failed", url=self._url, error=str(exc))
                return
            self._keys = keys
            self._fetched_at = self._attempted_at
            log.info("jwks.fetched", url=self._url, keys=len(keys))

    async def _fetch(self) -> dict[tuple[str, str], VerifyingKey]:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS)
        body = bytearray()
        try:
            async with self._http.stream("GET", self._url) as response:
                if response.status_code != httpx.codes.OK:
                    raise JwksFetchError(f"HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise JwksFetchError("JWKS document too large")
        except httpx.HTTPError as exc:
            raise JwksFetchError(type(exc).__name__) from exc
        return _parse_jwks(bytes(body))


def _parse_jwks(body: bytes) -> dict[tuple[str, str], VerifyingKey]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise JwksFetchError("JWKS is not JSON") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksFetchError("JWKS has no 'keys' list")
    keys: dict[tuple[str, str], VerifyingKey] = {}
    for entry in entries:
        parsed = public_key_from_jwk(entry) if isinstance(entry, dict) else None
        if parsed is not None:
            kid, key = parsed
            # the first entry wins: a later duplicate cannot shadow it
            keys.setdefault((kid, key.algorithm), key)
        # unusable entries are skipped: a JWKS may legitimately hold keys we do not use
    return keys
