"""Authentication: a server interceptor turns the ``authorization`` metadata into a ``Caller``.

The token is checked by the shared ``TokenVerifier`` (``JwtVerifier``), which caches verified
tokens, so a repeat caller costs one SHA-256, not a signature check. The ``Grant`` (the
``Caller`` and its verified token) is put in a contextvar: grpc.aio runs the interceptors and
the handler of one call in the same ``contextvars.Context``, a fresh one per call, so the
servicer reads it with ``current_caller()`` / ``current_grant()`` and no call can see
another's. Authorisation is not decided here: the module's access policies decide it inside
``CryptoService``.

Health and reflection are exempt; every other method, including any added later, needs a token
(fail closed). A refused token ends the call with UNAUTHENTICATED (mapped by the boundary).

The ``x-ekms-justification`` metadata (``app/domain/justification.py``) is parsed here too, once
per call, onto the grant's ``Caller``; a malformed one ends the call with INVALID_ARGUMENT
(``JUSTIFICATION_INVALID``) before the handler reads anything.

A stream may outlive its token, so the contextvar holds a ``Grant`` (the caller and the verified
token): stream handlers call ``grant.check()`` on every message, which compares the token's
cached expiry (leeway included) with the verifier's clock and raises ``Unauthenticated``
(``TOKEN_EXPIRED``) once it is past, ending the stream with UNAUTHENTICATED.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

import grpc

from app.application.ports import TokenVerifier, VerifiedToken
from app.domain.errors import EkmsError, InvalidInput, Unauthenticated
from app.domain.justification import JUSTIFICATION_HEADER, Justification, justification_from
from app.domain.values import Caller
from app.grpc._handlers import Behavior, ProtectedInterceptor, replace_behavior

AUTHORIZATION = "authorization"


@dataclass(frozen=True, slots=True)
class Grant:
    """What the current call was authenticated as, and the means to re-check it."""

    token: VerifiedToken
    verifier: TokenVerifier
    justification: Justification | None = None  # what the call's metadata sent
    caller: Caller = field(init=False)  # the token's, with the justification: built once

    def __post_init__(self) -> None:
        caller = self.token.caller
        if self.justification is not None:
            caller = replace(caller, justification=self.justification)
        object.__setattr__(self, "caller", caller)

    def check(self) -> None:
        """``Unauthenticated`` once the token has expired (no signature check: cheap)."""
        self.verifier.check_still_valid(self.token)


_GRANT: ContextVar[Grant | None] = ContextVar("ekms_grpc_grant", default=None)


def current_grant() -> Grant:
    """The authentication of the current call."""
    grant = _GRANT.get()
    if grant is None:  # only reachable if a method were served without the interceptor
        raise Unauthenticated("missing bearer token")
    return grant


def current_caller() -> Caller:
    """The authenticated caller of the current call."""
    return current_grant().caller


def authorization_value(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == AUTHORIZATION and isinstance(value, str):
            return value
    return None


def justification_of(metadata: Sequence[tuple[str, str | bytes]] | None) -> Justification | None:
    """The call's ``x-ekms-justification``, if it sent one; ``InvalidInput`` if it is bad."""
    sent = [v for k, v in metadata or () if k == JUSTIFICATION_HEADER and isinstance(v, str)]
    return justification_from(sent)


class AuthInterceptor(ProtectedInterceptor):
    def __init__(self, verifier: TokenVerifier | None) -> None:
        # No verifier: no token source is configured, so every protected call is refused.
        self._verifier = verifier

    async def protect(
        self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        try:
            if self._verifier is None:
                raise Unauthenticated("no token verifier is configured on this server")
            metadata = details.invocation_metadata
            token = await self._verifier.verify_token(authorization_value(metadata))
            justification = justification_of(metadata)
        except (Unauthenticated, InvalidInput) as exc:  # InvalidInput: a bad justification
            return _refusing(handler, exc)
        _GRANT.set(Grant(token, self._verifier, justification))
        return handler


def _refusing(handler: grpc.RpcMethodHandler, error: EkmsError) -> grpc.RpcMethodHandler:
    """A handler of the same kind that raises ``error`` without reading the request."""

    def unary(_: Behavior) -> Behavior:
        async def refuse(_request: Any, _context: Any) -> Any:
            raise error

        return refuse

    def stream(_: Behavior) -> Behavior:
        async def refuse(_request: Any, _context: Any) -> Any:
            raise error
            yield  # pragma: no cover - makes this an async generator, like the real one

        return refuse

    return replace_behavior(handler, unary, stream)
