"""Getting a token out of an Authorization value, and reading its (unverified) header."""

from __future__ import annotations

from dataclasses import dataclass

from jwt import PyJWS
from jwt.exceptions import PyJWTError

from app.domain.errors import Unauthenticated

#: Far above any real token; bounds the work an oversized header can cost us.
MAX_TOKEN_CHARS = 8192


@dataclass(frozen=True, slots=True)
class TokenHeader:
    """The JOSE header fields we act on. Not trusted until the signature is checked."""

    alg: str
    kid: str | None


def bearer_token(authorization: str | None) -> str:
    """The token from ``Bearer <token>`` (scheme case-insensitive, RFC 7235)."""
    if not authorization:
        raise Unauthenticated("missing bearer token")
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise Unauthenticated("authorization is not a bearer token")
    token = parts[1]
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise Unauthenticated("malformed token")
    return token


def unverified_header(token: str) -> TokenHeader:
    try:
        header = PyJWS().get_unverified_header(token)
    except PyJWTError as exc:
        raise Unauthenticated("malformed token") from exc
    alg = header.get("alg")
    kid = header.get("kid")
    if not isinstance(alg, str) or not (kid is None or isinstance(kid, str)):
        raise Unauthenticated("malformed token")
    return TokenHeader(alg=alg, kid=kid)
