"""/api/v1/crypto/{encrypt,decrypt,rewrap}-batch: the batch data plane for callers without
gRPC. Translation only: ``CryptoService.run_columns`` (the use case gRPC's batches call) does
the work, with the same item limit (``EKMS_MAX_BATCH_ITEMS``) and one result per item. An
entry that cannot be translated (no target, bad base64, a malformed ciphertext) has that
error as its result and is not served, as ``run_batch`` would answer it."""

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
from app.application.crypto import ColumnResults, ItemColumns, check_batch_size
from app.application.targets import Target
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
) -> ColumnResults:
    services = services_of(request)
    check_batch_size(len(body.items), services.max_batch_items)  # before any entry is read
    default = body.default_target()
    targets: list[Target | EkmsError] = []
    data: list[bytes] = []
    contexts: list[bytes] = []
    for entry in body.items:
        try:
            target, value, context = entry.parts(default)
        except EkmsError as exc:  # this item's result; it is not served
            targets.append(exc)
            data.append(b"")
            contexts.append(b"")
            continue
        targets.append(target)
        data.append(value)
        contexts.append(context)
    batch = ItemColumns(targets, data, contexts)
    return await services.crypto.run_columns(
        operation, caller, batch, max_items=services.max_batch_items
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
    results: ColumnResults,
    ok: Callable[[_Entry, bytes], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each entry's row: its id and either its answer (``ok``) or its problem."""
    out: list[dict[str, Any]] = []
    rows = zip(entries, results.data, results.key_versions, strict=True)
    for i, (entry, value, version) in enumerate(rows):
        if value is None:
            out.append({"id": entry.id, "error": item_problem(results.errors[i])})
        else:
            out.append({"id": entry.id, "key_version": version, **ok(entry, value)})
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
