"""Who is calling: a bearer token in, a verified ``Caller`` (and its validity window) out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.domain.errors import Reason, Unauthenticated
from app.domain.values import Caller


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A verified token's caller and the window (epoch seconds, leeway included) it is valid in."""

    caller: Caller
    not_before: float
    not_after: float

    def check_window(self, now: float) -> None:
        """Refuse the token outside its validity window. Used on fresh and on cached tokens."""
        if now >= self.not_after:
            raise Unauthenticated("token has expired", reason=Reason.TOKEN_EXPIRED)
        if now < self.not_before:
            raise Unauthenticated("token is not yet valid")


class TokenVerifier(Protocol):
    """Bearer token in, verified token out; raises ``Unauthenticated``. ``JwtVerifier`` is one.

    Shared by both inbound adapters: REST reads the caller once per request, a gRPC stream
    keeps the token and re-checks it with ``check_still_valid`` on every message.
    """

    async def verify_token(self, authorization: str | None) -> VerifiedToken: ...

    def check_still_valid(self, token: VerifiedToken) -> None:
        """``Unauthenticated`` (``TOKEN_EXPIRED``) once the clock leaves the token's window."""
        ...
