"""Verifying keys, each bound to the one algorithm its kind allows.

Binding the algorithm to the key (not to the token header) is what stops algorithm confusion:
the shared secret only ever checks HS256, an RSA key only RS256, a P-256 key only ES256. A public
key is never used as an HMAC secret, and ``alg: none`` matches no key at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from app.infra.tokens._settings import check_hs256_secret

HS256 = "HS256"
RS256 = "RS256"
ES256 = "ES256"
ASYMMETRIC_ALGORITHMS = frozenset({RS256, ES256})
MIN_RSA_BITS = 2048

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A key and the single algorithm it may verify."""

    algorithm: str
    key: PublicKey | bytes = field(repr=False)


def hmac_key(secret: str) -> VerifyingKey:
    return VerifyingKey(HS256, check_hs256_secret(secret))


def public_key_from_pem(pem: bytes) -> VerifyingKey:
    """Load ``EKMS_JWT_PUBLIC_KEY_FILE``'s contents. Raises ``ValueError`` for anything unusable."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ValueError("the JWT public key is not a PEM public key") from exc
    return _asymmetric(key)


def public_key_from_jwk(jwk: Mapping[str, Any]) -> tuple[str, VerifyingKey] | None:
    """``(kid, key)`` for a usable JWKS entry, ``None`` for one we must ignore.

    Ignored: entries without a string ``kid``, symmetric (``oct``) and other key types, keys
    marked for encryption, keys whose declared ``alg`` differs from what their type implies,
    RSA keys under 2048 bits and curves other than P-256.
    """
    kid = jwk.get("kid")
    kty = jwk.get("kty")
    if not isinstance(kid, str) or not kid or kty not in ("RSA", "EC"):
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    implied = RS256 if kty == "RSA" else ES256
    if jwk.get("alg", implied) != implied:
        return None
    try:
        loaded = PyJWK(dict(jwk), algorithm=implied).key
        key = _asymmetric(loaded)
    except (PyJWTError, ValueError, TypeError):
        return None
    return kid, key


def _asymmetric(key: object) -> VerifyingKey:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
        return VerifyingKey(RS256, key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("EC keys must be on P-256 (ES256)")
        return VerifyingKey(ES256, key)
    raise ValueError("only RSA and P-256 public keys can verify tokens")
