"""``JwtVerifier``: bearer token in, ``Caller`` out. Shared by the gRPC and REST adapters."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from jwt import PyJWS
from jwt.exceptions import InvalidSignatureError, PyJWTError

from app.application.ports import Clock, VerifiedToken
from app.domain.errors import Reason, Unauthenticated
from app.domain.values import Caller
from app.infra.tokens._cache import VerifiedTokenCache, token_digest
from app.infra.tokens._claims import check_claims
from app.infra.tokens._jwks import JwksKeySource
from app.infra.tokens._keys import (
    ASYMMETRIC_ALGORITHMS,
    HS256,
    VerifyingKey,
    hmac_key,
    public_key_from_pem,
)
from app.infra.tokens._parse import TokenHeader, bearer_token, unverified_header
from app.infra.tokens._settings import TokenSettings


@dataclass(frozen=True, slots=True)
class VerifierStats:
    """Counters for metrics and tests."""

    signature_checks: int
    cache_hits: int
    cached_tokens: int
    jwks_fetches: int


class JwtVerifier:
    """Verifies ``Authorization: Bearer <jwt>`` values.

    Which key checks a token follows from its ``alg`` and ``kid``, and each key accepts only its
    own algorithm (see ``_keys``):

    - ``HS256`` -> the shared secret, if configured;
    - ``RS256``/``ES256`` with a ``kid`` and a JWKS configured -> that JWKS entry, nothing else;
    - ``RS256``/``ES256`` otherwise -> the PEM public key, if configured;
    - any other ``alg`` (``none`` included) -> refused.

    A verified token is cached (by SHA-256) until it expires, so repeat calls skip the signature
    check; every hit is still checked against the clock. A cached token stays accepted until its
    ``exp`` even if its JWKS key is withdrawn meanwhile.

    Every refusal is ``Unauthenticated`` (reason ``TOKEN_EXPIRED`` for expiry, else
    ``UNAUTHENTICATED``) with a short fixed message that never quotes the token.
    """

    def __init__(
        self,
        settings: TokenSettings,
        clock: Clock,
        *,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if not settings.has_key_source:
            raise ValueError("no JWT key configured: set an HS256 secret, a public key or a JWKS")
        self._settings = settings
        self._clock = clock
        self._secret = hmac_key(settings.hs256_secret) if settings.hs256_secret else None
        self._public_key = (
            public_key_from_pem(settings.public_key_pem) if settings.public_key_pem else None
        )
        self._jwks = (
            JwksKeySource(
                settings.jwks_url,
                clock=clock,
                refresh_seconds=settings.jwks_refresh_seconds,
                min_refresh_seconds=settings.jwks_min_refresh_seconds,
                http_client=http_client,
            )
            if settings.jwks_url
            else None
        )
        self._cache = VerifiedTokenCache(settings.cache_size)
        # One PyJWS per algorithm, each allowing only that algorithm.
        self._jws = {
            alg: PyJWS(algorithms=[alg], options={"enforce_minimum_key_length": True})
            for alg in (HS256, *sorted(ASYMMETRIC_ALGORITHMS))
        }
        self._signature_checks = 0
        self._cache_hits = 0

    @property
    def stats(self) -> VerifierStats:
        return VerifierStats(
            signature_checks=self._signature_checks,
            cache_hits=self._cache_hits,
            cached_tokens=len(self._cache),
            jwks_fetches=self._jwks.fetches if self._jwks else 0,
        )

    async def verify(self, authorization: str | None) -> Caller:
        """The caller named by a valid token; ``Unauthenticated`` otherwise."""
        return (await self.verify_token(authorization)).caller

    async def verify_token(self, authorization: str | None) -> VerifiedToken:
        """Like ``verify``, with the token's validity window, for callers that hold on to it
        (a gRPC stream re-checks it with ``check_still_valid`` on every message)."""
        token = bearer_token(authorization)
        digest = token_digest(token)
        cached = self._cache.get(digest)
        if cached is not None:
            try:
                cached.check_window(self._now())
            except Unauthenticated as exc:
                if exc.reason is Reason.TOKEN_EXPIRED:
                    self._cache.drop(digest)
                raise
            self._cache_hits += 1
            return cached

        header = unverified_header(token)
        key = await self._key_for(header)
        payload = self._check_signature(token, key)
        verified = check_claims(payload, self._settings, self._now())
        self._cache.put(digest, verified)
        return verified

    def check_still_valid(self, token: VerifiedToken) -> None:
        """Refuse a token verified earlier once the clock leaves its window (leeway included).

        The same rule as ``verify`` applies, at the cost of one clock read and two comparisons:
        the signature and claims were checked when the token was first verified.
        """
        token.check_window(self._now())

    async def aclose(self) -> None:
        """Close the JWKS HTTP client if this verifier created it."""
        if self._jwks is not None:
            await self._jwks.aclose()

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def _key_for(self, header: TokenHeader) -> VerifyingKey:
        if header.alg == HS256 and self._secret is not None:
            return self._secret
        if header.alg in ASYMMETRIC_ALGORITHMS:
            if header.kid is not None and self._jwks is not None:
                return await self._jwks.key_for(header.kid, header.alg)
            if self._public_key is not None and self._public_key.algorithm == header.alg:
                return self._public_key
            if self._public_key is None and self._jwks is not None:
                raise Unauthenticated("token has no key id")
        raise Unauthenticated("token algorithm is not accepted")

    def _check_signature(self, token: str, key: VerifyingKey) -> bytes:
        self._signature_checks += 1
        # The allow-list is the key's one algorithm, whatever the header claims.
        try:
            payload: bytes = self._jws[key.algorithm].decode(
                token, key.key, algorithms=[key.algorithm]
            )
        except InvalidSignatureError as exc:
            raise Unauthenticated("token signature is invalid") from exc
        except PyJWTError as exc:
            raise Unauthenticated("malformed token") from exc
        return payload
