"""Who may call a route: bearer-token authentication (the shared ``TokenVerifier``) and roles.

Every ``/api/v1`` route declares one ``Access`` rule as a dependency, e.g.
``caller: Annotated[Caller, Depends(ADMIN)]``. ``SecuredRoute`` runs that rule *before* the
request body is read, so the answer to an unauthenticated or unauthorized caller is always
401 or 403, never a validation error about a body it should not have sent.

Roles (see docs/rest.md for the full matrix):

- ``ekms.admin``: EKMS configuration, modules, field configurations, access policies;
- ``ekms.key_manager``: key lifecycle actions, sync, KEK rotation;
- ``ekms.auditor``: the audit trail. Status and the read-only module and key-version views are
  open to all three roles: each needs to see the key chain's health to do its job, and none of
  it contains key material.
- The data plane (``/crypto/*``) needs only a valid token: the module access policies decide.
  Its rule also reads the call's ``x-ekms-justification`` header (once, onto the ``Caller``):
  a malformed one is a 422 (``JUSTIFICATION_INVALID``) before the body is read.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated, Any

import structlog
from fastapi import Header, HTTPException, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.services import services_of
from app.domain.errors import Forbidden, InvalidInput, Reason, Unauthenticated
from app.domain.justification import JUSTIFICATION_HEADER, justification_from
from app.domain.values import Caller


class Role(StrEnum):
    ADMIN = "ekms.admin"
    KEY_MANAGER = "ekms.key_manager"
    AUDITOR = "ekms.auditor"


bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    scheme_name="bearerAuth",
    description="A JWT whose `sub` names the caller and whose roles claim lists its roles.",
)

_CALLER_KEY = "caller"
_JUSTIFIED_KEY = "justified_caller"
_JUSTIFICATION_DOC = (
    "Why the key is used: `CODE[:text]`, CODE one of the reason codes in the README (e.g. "
    "`CUSTOMER_INITIATED_SUPPORT:ticket 4711`), text 1-256 printable ASCII characters"
)


async def authenticate(request: Request) -> Caller:
    """The verified caller of this request (verified once, then remembered on the request)."""
    state = request.scope.setdefault("state", {})
    cached = state.get(_CALLER_KEY)
    if isinstance(cached, Caller):
        return cached
    verifier = services_of(request).verifier
    if verifier is None:
        raise Unauthenticated("this server has no token source configured")
    caller = (await verifier.verify_token(request.headers.get("authorization"))).caller
    state[_CALLER_KEY] = caller
    structlog.contextvars.bind_contextvars(subject=caller.subject)
    return caller


@dataclass(frozen=True, slots=True)
class Access:
    """A route's rule: any one of ``roles``, or (empty) any authenticated caller."""

    roles: frozenset[Role]
    label: str

    async def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    ) -> Caller:
        return await self.check(request)

    async def check(self, request: Request) -> Caller:
        caller = await authenticate(request)
        if self.roles and not (caller.roles & {role.value for role in self.roles}):
            needed = " or ".join(sorted(role.value for role in self.roles))
            raise Forbidden(f"this action needs the role {needed}", reason=Reason.ROLE_REQUIRED)
        return caller

    @property
    def description(self) -> str:
        if not self.roles:
            return "any authenticated caller; the module access policies decide"
        return "role " + " or ".join(f"`{r.value}`" for r in sorted(self.roles))


@dataclass(frozen=True, slots=True)
class DataPlaneAccess(Access):
    """Any authenticated caller, with the justification its request sent (if any)."""

    async def __call__(  # the header declared here so that the OpenAPI document shows it
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
        _justification: Annotated[
            str | None, Header(alias=JUSTIFICATION_HEADER, description=_JUSTIFICATION_DOC)
        ] = None,
    ) -> Caller:
        return await self.check(request)

    async def check(self, request: Request) -> Caller:
        state = request.scope.setdefault("state", {})
        cached = state.get(_JUSTIFIED_KEY)
        if isinstance(cached, Caller):
            return cached
        caller = await authenticate(request)
        justification = justification_from(request.headers.getlist(JUSTIFICATION_HEADER))
        if justification is not None:
            caller = replace(caller, justification=justification)
        state[_JUSTIFIED_KEY] = caller
        return caller


def access(*roles: Role, label: str = "") -> Access:
    return Access(frozenset(roles), label or "+".join(sorted(r.value for r in roles)) or "any")


ADMIN = access(Role.ADMIN)
KEY_MANAGER = access(Role.KEY_MANAGER)
AUDITOR = access(Role.AUDITOR)
ANY_ADMIN_ROLE = access(Role.ADMIN, Role.KEY_MANAGER, Role.AUDITOR)
DATA_PLANE = DataPlaneAccess(frozenset(), "data-plane")


def access_of(route: APIRoute) -> list[Access]:
    """The ``Access`` rules a route declares (exactly one for every ``/api/v1`` route)."""
    return [dep.call for dep in route.dependant.dependencies if isinstance(dep.call, Access)]


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _refuse_nul(request: Request) -> None:
    """Path and query values with NUL would reach SQL, which cannot store them: 422 here."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if "\x00" in str(value):
            raise InvalidInput(f"{name} must not contain NUL characters", field=name)


class SecuredRoute(APIRoute):
    """Checks the route's ``Access`` rule and the body's media type before the body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()
        rules = access_of(self)
        takes_body = self.body_field is not None

        async def handler(request: Request) -> Response:
            for rule in rules:
                await rule.check(request)
            _refuse_nul(request)
            content_type = request.headers.get("content-type")
            if takes_body and _has_body(request) and not _is_json(content_type):
                raise HTTPException(415, "send the request body as application/json")
            return await inner(request)

        return handler
