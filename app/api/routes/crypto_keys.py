"""/api/v1/crypto/data-key[/decrypt] and /api/v1/crypto/mac[/verify]: envelope data keys and
blind indexes for callers without gRPC. Translation only: the ``CryptoService`` use cases
gRPC calls do the work; module access policies decide (data keys as ``encrypt``/``decrypt``,
MACs as ``mac``)."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request

from app.api.deps import DataPlaneCaller
from app.api.openapi import problems
from app.api.schemas.common import decode_b64
from app.api.schemas.crypto_keys import (
    DataKeyDecryptIn,
    DataKeyDecryptOut,
    DataKeyIn,
    DataKeyOut,
    MacIn,
    MacOut,
    MacVerifyIn,
    MacVerifyOut,
)
from app.api.security import SecuredRoute
from app.api.services import services_of
from app.application.crypto import CryptoService
from app.domain import ciphertext as ct

router = APIRouter(prefix="/api/v1/crypto", route_class=SecuredRoute)

_COMMON = {
    "_403": "A module access policy rejected the call (MAP_REJECTED), or wants a "
    "justification the call did not send (JUSTIFICATION_REQUIRED)",
    "_404": "No such module, field configuration or key version "
    "(MODULE_NOT_FOUND, FIELD_CONFIG_NOT_FOUND, KEY_VERSION_NOT_FOUND)",
    "_409": "The key chain or key version cannot serve (EXTERNAL_KEY_*, KEY_VERSION_*, "
    "NO_ACTIVE_KEY, FIELD_CONFIG_INACTIVE, MODULE_NOT_PUBLISHED, KEY_USAGE_LIMIT_REACHED)",
    "_429": "The caller's rate limit (RATE_LIMITED); `Retry-After` says when to retry",
}
_DATA_KEY = problems(
    400,
    403,
    404,
    409,
    429,
    _400="Malformed JSON, or (decrypt) a sealed key that does not verify: DECRYPTION_FAILED, "
    "one opaque answer whatever the cause",
    **_COMMON,
)
_MAC = problems(
    400,
    403,
    404,
    409,
    429,
    _400="Malformed JSON, or (verify) a MAC that does not verify: MAC_MISMATCH, one opaque "
    "answer whatever the cause",
    **_COMMON,
)


def _crypto(request: Request) -> CryptoService:
    return services_of(request).crypto


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@router.post(
    "/data-key", tags=["crypto"], summary="Generate an envelope data key", responses=_DATA_KEY
)
async def generate_data_key(
    body: DataKeyIn, request: Request, caller: DataPlaneCaller
) -> DataKeyOut:
    pair = await _crypto(request).generate_data_key(
        caller, body.target(), decode_b64(body.context), body.spec()
    )
    return DataKeyOut(
        sealed_key=ct.to_text(pair.sealed.sealed_key),
        key_version=pair.sealed.key_version,
        plaintext_key=_b64(pair.plaintext_key) if body.include_plaintext else None,
    )


@router.post(
    "/data-key/decrypt", tags=["crypto"], summary="Open a sealed data key", responses=_DATA_KEY
)
async def decrypt_data_key(
    body: DataKeyDecryptIn, request: Request, caller: DataPlaneCaller
) -> DataKeyDecryptOut:
    opened = await _crypto(request).decrypt_data_key(caller, body.item())
    return DataKeyDecryptOut(
        plaintext_key=_b64(opened.plaintext_key), key_version=opened.key_version
    )


@router.post("/mac", tags=["crypto"], summary="Compute a blind-index MAC", responses=_MAC)
async def compute_mac(body: MacIn, request: Request, caller: DataPlaneCaller) -> MacOut:
    made = await _crypto(request).compute_mac(caller, body.item(), body.key_version)
    return MacOut(mac=_b64(made.mac), key_version=made.key_version)


@router.post("/mac/verify", tags=["crypto"], summary="Verify a blind-index MAC", responses=_MAC)
async def verify_mac(body: MacVerifyIn, request: Request, caller: DataPlaneCaller) -> MacVerifyOut:
    version = await _crypto(request).verify_mac(caller, body.item(), decode_b64(body.mac))
    return MacVerifyOut(key_version=version)
