"""/api/v1/crypto: the single-item data plane for callers without gRPC (batches:
``crypto_batch``; data keys and MACs: ``crypto_keys``). Module access policies decide.

The routes only translate: the body gives the ``Item`` (its base64 decoded once, when it was
validated), ``CryptoService`` does the work.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request

from app.api.deps import DataPlaneCaller
from app.api.openapi import problems
from app.api.schemas.crypto import (
    DecryptIn,
    DecryptOut,
    EncryptIn,
    EncryptOut,
    RewrapIn,
    RewrapOut,
)
from app.api.security import SecuredRoute
from app.api.services import services_of
from app.application.crypto import CryptoService, data_of
from app.domain import ciphertext as ct

router = APIRouter(prefix="/api/v1/crypto", route_class=SecuredRoute)

_RESPONSES = problems(
    400,
    403,
    404,
    409,
    429,
    _400="Malformed JSON, or (decrypt) a ciphertext that does not verify: DECRYPTION_FAILED, "
    "one opaque answer whatever the cause",
    _403="A module access policy rejected the call (MAP_REJECTED), or wants a "
    "justification the call did not send (JUSTIFICATION_REQUIRED)",
    _404="No such module or field configuration (MODULE_NOT_FOUND, FIELD_CONFIG_NOT_FOUND)",
    _409="The key chain or key version cannot serve (EXTERNAL_KEY_*, KEY_VERSION_*, "
    "NO_ACTIVE_KEY, FIELD_CONFIG_INACTIVE, MODULE_NOT_PUBLISHED, KEY_USAGE_LIMIT_REACHED)",
    _429="The caller's rate limit (RATE_LIMITED); `Retry-After` says when to retry",
)


def _crypto(request: Request) -> CryptoService:
    return services_of(request).crypto


@router.post("/encrypt", tags=["crypto"], summary="Encrypt one value", responses=_RESPONSES)
async def encrypt(body: EncryptIn, request: Request, caller: DataPlaneCaller) -> EncryptOut:
    result = await _crypto(request).encrypt(caller, body.item())
    return EncryptOut(ciphertext=ct.to_text(data_of(result)), key_version=result.key_version or 0)


@router.post("/decrypt", tags=["crypto"], summary="Decrypt one value", responses=_RESPONSES)
async def decrypt(body: DecryptIn, request: Request, caller: DataPlaneCaller) -> DecryptOut:
    result = await _crypto(request).decrypt(caller, body.item())
    return DecryptOut(
        plaintext=base64.b64encode(data_of(result)).decode("ascii"),
        key_version=result.key_version or 0,
    )


@router.post(
    "/rewrap",
    tags=["crypto"],
    summary="Rewrap one ciphertext under the active key version, without its plaintext",
    responses=_RESPONSES,
)
async def rewrap(body: RewrapIn, request: Request, caller: DataPlaneCaller) -> RewrapOut:
    result = await _crypto(request).rewrap(caller, body.item())
    text = ct.to_text(data_of(result))
    return RewrapOut(
        ciphertext=text, key_version=result.key_version or 0, changed=text != body.ciphertext
    )
