"""What the token verifier is configured with."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
MIN_HS256_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Which keys verify bearer tokens and which claims they must carry.

    Key sources (at least one is needed by ``JwtVerifier``):

    - ``hs256_secret``: a shared secret; enables HS256 and nothing else.
    - ``public_key_pem``: the contents of ``EKMS_JWT_PUBLIC_KEY_FILE`` (read by the caller);
      an RSA key (>= 2048 bits) enables RS256, a P-256 key enables ES256.
    - ``jwks_url``: an RSA/P-256 JWKS; each key enables the one algorithm its type implies.

    ``jwks_min_refresh_seconds`` bounds how often a token with an unknown ``kid`` (or a failing
    endpoint) may make us fetch the JWKS again.

    ``leeway_seconds`` tolerates clock skew on every time claim. ``max_lifetime_seconds`` bounds
    how long any token may live (``exp - iat``, or ``exp - now`` without ``iat``), so a token with
    an ``exp`` in year 9999 cannot become a credential for ever.
    """

    hs256_secret: str | None = field(default=None, repr=False)
    public_key_pem: bytes | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    roles_claim: str = "roles"
    leeway_seconds: int = 30
    max_lifetime_seconds: int = 86_400
    cache_size: int = 10_000
    jwks_refresh_seconds: int = 300
    jwks_min_refresh_seconds: int = 15

    def __post_init__(self) -> None:
        if self.hs256_secret is not None:
            check_hs256_secret(self.hs256_secret)
        if self.jwks_url is not None and urlsplit(self.jwks_url).scheme not in ("http", "https"):
            raise ValueError("jwks_url must be an http(s) URL")
        if not self.roles_claim:
            raise ValueError("roles_claim must not be empty")
        if self.leeway_seconds < 0 or self.cache_size < 0:
            raise ValueError("leeway_seconds and cache_size must not be negative")
        if self.max_lifetime_seconds <= 0:
            raise ValueError("max_lifetime_seconds must be positive")
        if self.jwks_refresh_seconds <= 0 or self.jwks_min_refresh_seconds < 0:
            raise ValueError("jwks_refresh_seconds must be positive")

    @property
    def has_key_source(self) -> bool:
        return bool(self.hs256_secret or self.public_key_pem or self.jwks_url)


def check_hs256_secret(secret: str) -> bytes:
    """The secret as key bytes; refuses secrets too short for HS256 (never echoes them)."""
    key = secret.encode("utf-8")
    if len(key) < MIN_HS256_SECRET_BYTES:
        raise ValueError(f"the HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes")
    return key
