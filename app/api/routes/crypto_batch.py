"""/api/v1/crypto/{encrypt,decrypt,rewrap}-batch: the batch data plane for callers without
gRPC. Translation only: ``CryptoService.run_batch`` (the use case gRPC's batches call) does
the work, with the same item limit (``EKMS_MAX_BATCH_ITEMS``) and one result per item."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request

from app.api.deps import DataPlaneCaller
from app.api.errors import http_status
from app.api.openapi import problems
from app.api.problems import Problem, problem_type, title_for
from app.api.schemas.crypto_batch import (
    BatchItem,
    CiphertextBatchIn,
    CiphertextBatchItem,
    DecryptBatchOut,
    DecryptBatchResult,
    EncryptBatchIn,
    EncryptBatchItem,
    EncryptBatchOut,
    EncryptBatchResult,
    RewrapBatchOut,
    RewrapBatchResult,
)
from app.api.security import SecuredRoute
from app.api.services import services_of
from app.application.crypto import Item, ItemResult, data_of
from app.domain import ciphertext as ct
from app.domain.errors import EkmsError
from app.domain.values import Caller, Operation

router = APIRouter(prefix="/api/v1/crypto", route_class=SecuredRoute)

_RESPONSES = problems(
    422,
    429,
    _422="A body that does not validate, or more items than EKMS_MAX_BATCH_ITEMS (INVALID_INPUT). "
    "A bad item is not a failed call: its result carries its own problem",
    _429="The caller's rate limit (RATE_LIMITED), a batch costing its item count; "
    "`Retry-After` says when to retry",
)

_Entry = TypeVar("_Entry", EncryptBatchItem, CiphertextBatchItem)


async def _run(
    request: Request,
    caller: Caller,
    operation: Operation,
    body: EncryptBatchIn | CiphertextBatchIn,
) -> list[ItemResult]:
    services = services_of(request)
    default = body.default_target()

    def to_item(entry: BatchItem) -> Item:
        return entry.item(default)

    return await services.crypto.run_batch(
        operation, caller, body.items, to_item, max_items=services.max_batch_items
    )


def item_problem(error: EkmsError) -> Problem:
    """A failed item's problem: what the single-item route would answer for it."""
    status, reason = http_status(error), error.reason.value
    return Problem(
        type=problem_type(reason),
        title=title_for(status),
        status=status,
        detail=error.message,
        reason=reason,
    )


def _each(
    entries: list[_Entry],
    results: list[ItemResult],
    ok: Callable[[_Entry, bytes], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each entry's row: its id and either its answer (``ok``) or its problem."""
    out: list[dict[str, Any]] = []
    for entry, result in zip(entries, results, strict=True):
        if result.error is not None:
            out.append({"id": entry.id, "error": item_problem(result.error)})
        else:
            row = ok(entry, data_of(result))
            out.append({"id": entry.id, "key_version": result.key_version, **row})
    return out


@router.post("/encrypt-batch", tags=["crypto"], summary="Encrypt many values", responses=_RESPONSES)
async def encrypt_batch(
    body: EncryptBatchIn, request: Request, caller: DataPlaneCaller
) -> EncryptBatchOut:
    results = await _run(request, caller, Operation.ENCRYPT, body)
    rows = _each(body.items, results, lambda _, data: {"ciphertext": ct.to_text(data)})
    return EncryptBatchOut(results=[EncryptBatchResult(**row) for row in rows])


@router.post("/decrypt-batch", tags=["crypto"], summary="Decrypt many values", responses=_RESPONSES)
async def decrypt_batch(
    body: CiphertextBatchIn, request: Request, caller: DataPlaneCaller
) -> DecryptBatchOut:
    results = await _run(request, caller, Operation.DECRYPT, body)
    rows = _each(
        body.items, results, lambda _, data: {"plaintext": base64.b64encode(data).decode()}
    )
    return DecryptBatchOut(results=[DecryptBatchResult(**row) for row in rows])


@router.post(
    "/rewrap-batch",
    tags=["crypto"],
    summary="Rewrap many ciphertexts under the active key version",
    responses=_RESPONSES,
)
async def rewrap_batch(
    body: CiphertextBatchIn, request: Request, caller: DataPlaneCaller
) -> RewrapBatchOut:
    results = await _run(request, caller, Operation.REWRAP, body)

    def moved(entry: CiphertextBatchItem, data: bytes) -> dict[str, Any]:
        text = ct.to_text(data)
        return {"ciphertext": text, "changed": text != entry.ciphertext}

    rows = _each(body.items, results, moved)
    return RewrapBatchOut(results=[RewrapBatchResult(**row) for row in rows])
