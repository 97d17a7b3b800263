"""Development tokens for ``ekms token`` (HS256 only)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import jwt

from app.application.ports import Clock
from app.infra.tokens._settings import check_hs256_secret


def mint_dev_token(
    secret: str,
    *,
    sub: str,
    roles: Iterable[str],
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    roles_claim: str = "roles",
    clock: Clock,
) -> str:
    """An HS256 token that ``JwtVerifier`` with the same secret and settings accepts."""
    key = check_hs256_secret(secret)
    role_list = list(roles)
    if not sub.strip():
        raise ValueError("sub must not be blank")
    if not all(isinstance(r, str) and r for r in role_list):
        raise ValueError("roles must be non-empty strings")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    now = clock.now()
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "sub": sub,
        roles_claim: role_list,
        "iat": issued,
        "nbf": issued,
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, key, algorithm="HS256")
