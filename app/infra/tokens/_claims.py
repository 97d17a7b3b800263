"""Claim checks on a payload whose signature has already been verified.

Times are checked here against the injected clock (never PyJWT's wall clock), with
``leeway_seconds`` of tolerance for clock skew:

- ``exp`` is required; the token is accepted while ``now < exp + leeway``;
- ``nbf`` and ``iat``, when present, must not be later than ``now + leeway``;
- all three must be finite JSON numbers (``Infinity`` and ``NaN`` are refused);
- the lifetime is bounded by ``max_lifetime_seconds``: ``exp - iat`` must not exceed it, and a
  token without ``iat`` must not expire later than ``now + max + leeway`` (so ``exp: 1e308`` or a
  year-9999 expiry is refused, not trusted for ever).

``iss`` must equal the configured issuer when one is set. ``aud`` must name the configured
audience (a string or a list holding it); with no audience configured, a token that carries
``aud`` is refused (RFC 7519 §4.1.3: we cannot identify ourselves with its audience).

``sub`` must be a non-blank string of at most 255 characters, without control characters, and
must not start with the reserved ``system:`` prefix (any case): that namespace names ekms's own
actors in the audit trail (``system:ekms``), and a token must not impersonate them.

The roles claim may be absent (no roles), a list of non-empty strings, or a space-separated
string (OAuth ``scope`` style); anything else refuses the token, because a malformed roles claim
means a misconfigured issuer and failing loudly beats silently running with fewer roles.
"""

from __future__ import annotations

import json
import math
from typing import Any

from app.application.ports import VerifiedToken
from app.domain.errors import Unauthenticated
from app.domain.values import RESERVED_SUBJECT_PREFIX, Caller
from app.infra.tokens._settings import TokenSettings

MAX_SUBJECT_CHARS = 255


def check_claims(payload: bytes, settings: TokenSettings, now: float) -> VerifiedToken:
    claims = _load(payload)
    leeway = settings.leeway_seconds
    exp = _time_claim(claims, "exp")
    if exp is None:
        raise Unauthenticated("token has no expiry")
    iat = _time_claim(claims, "iat")
    starts = [t for t in (_time_claim(claims, "nbf"), iat) if t is not None]
    token = VerifiedToken(
        caller=Caller(subject=_subject(claims), roles=_roles(claims, settings.roles_claim)),
        not_before=max(starts, default=-math.inf) - leeway,
        not_after=exp + leeway,
    )
    token.check_window(now)
    _check_lifetime(exp, iat, settings, now)
    _check_issuer(claims, settings.issuer)
    _check_audience(claims, settings.audience)
    return token


def _load(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise Unauthenticated("malformed token") from exc
    if not isinstance(claims, dict):
        raise Unauthenticated("malformed token")
    return claims


def _refuse_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def _time_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"token claim {name!r} is not a number")
    try:
        number = float(value)  # an int beyond float range overflows here
    except OverflowError:
        raise Unauthenticated(f"token claim {name!r} is out of range") from None
    if not math.isfinite(number):
        raise Unauthenticated(f"token claim {name!r} is not a number")
    return number


def _check_lifetime(exp: float, iat: float | None, settings: TokenSettings, now: float) -> None:
    limit = settings.max_lifetime_seconds
    if iat is not None:
        too_long = exp - iat > limit
    else:  # nothing says when it was issued: count its life from now (skew allowed)
        too_long = exp - now > limit + settings.leeway_seconds
    if too_long:
        raise Unauthenticated(f"token lifetime exceeds the maximum of {limit} seconds")


def _printable(value: str) -> bool:
    """No control characters: names end up in audit rows and log lines (Postgres refuses NUL)."""
    return value.isprintable()


def _subject(claims: dict[str, Any]) -> str:
    sub = claims.get("sub")
    if (
        not isinstance(sub, str)
        or not sub.strip()
        or len(sub) > MAX_SUBJECT_CHARS
        or not _printable(sub)
    ):
        raise Unauthenticated("token has no valid subject")
    if sub.lstrip().casefold().startswith(RESERVED_SUBJECT_PREFIX):
        raise Unauthenticated(
            f"token subject uses the reserved {RESERVED_SUBJECT_PREFIX!r} prefix of ekms's actors"
        )
    return sub


def _roles(claims: dict[str, Any], claim: str) -> frozenset[str]:
    value = claims.get(claim)
    if value is None:
        return frozenset()
    if isinstance(value, str) and _printable(value):
        return frozenset(value.split())
    if isinstance(value, list) and all(
        isinstance(r, str) and r and len(r) <= MAX_SUBJECT_CHARS and _printable(r) for r in value
    ):
        return frozenset(value)
    raise Unauthenticated("token roles claim is malformed")


def _check_issuer(claims: dict[str, Any], issuer: str | None) -> None:
    if issuer is not None and claims.get("iss") != issuer:
        raise Unauthenticated("token issuer is not accepted")


def _check_audience(claims: dict[str, Any], audience: str | None) -> None:
    aud = claims.get("aud")
    if aud is None and audience is None:
        return
    accepted = aud == audience or (isinstance(aud, list) and audience in aud)
    if audience is None or not accepted:
        raise Unauthenticated("token audience is not accepted")
