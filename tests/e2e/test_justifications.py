"""Key access justifications end to end (issue 17, item 4): ``x-ekms-justification`` over gRPC
metadata and the REST header, a policy that requires one or certain codes, the denials, the
malformed values refused before anything is recorded, and the audit query that shows them.

The gRPC world of ``conftest`` (Postgres, moto's KMS server), plus one policy: role ``support``
may decrypt on global.billing only with ``CUSTOMER_INITIATED_SUPPORT`` or ``BREAK_GLASS``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

from app.application.policies import PolicyInput, create_policy
from app.bootstrap import build_rest_app
from app.domain import ciphertext as ct
from app.domain.justification import JustificationRule
from app.domain.values import AccessResult, Operation, TargetType
from tests.e2e.conftest import ADMIN, BILLING, Ekms, failure, item_reason, mint, module_target
from tests.e2e.rest_support import asgi_client

HEADER = "x-ekms-justification"
SUPPORT = "CUSTOMER_INITIATED_SUPPORT"
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
MALFORMED = [
    "PLEASE",  # not a code
    "customer_initiated_support",  # codes are exact
    f"{SUPPORT}:",  # a colon needs text
    f"{SUPPORT}:" + "x" * 257,  # at most 256 characters of text
]
NOT_PRINTABLE = f"{SUPPORT}:tab\there"  # printable ASCII only (gRPC clients refuse to send it)


@pytest.fixture
async def world(ekms: Ekms) -> AsyncIterator[Ekms]:
    data = PolicyInput(
        TargetType.ROLE,
        "support",
        frozenset({Operation.DECRYPT}),
        AccessResult.TRACK,
        justification=JustificationRule.of(True, frozenset({SUPPORT, "BREAK_GLASS"})),
    )
    await create_policy(ekms.container.ctx, ADMIN, BILLING, data)
    yield ekms


def _md(ekms: Ekms, *justifications: str, sub: str = "dave") -> tuple[tuple[str, str], ...]:
    return ekms.auth(sub, "support") + tuple((HEADER, j) for j in justifications)


async def _sealed(ekms: Ekms, plaintext: bytes = b"85000") -> bytes:
    response = await ekms.stub.Encrypt(
        pb.EncryptRequest(target=module_target(), plaintext=plaintext),
        metadata=ekms.auth("billing-svc", "billing"),
    )
    return bytes(response.ciphertext)


async def _events(ekms: Ekms, actor: str) -> list[dict[str, Any]]:
    """The audit events of ``actor`` as ``GET /api/v1/audit`` answers them (after a flush)."""
    await ekms.container.ctx.audit.flush()
    async with asgi_client(build_rest_app(ekms.container)) as api:
        response = await api.get(
            "/api/v1/audit",
            params={"actor": actor, "limit": 500},
            headers={"Authorization": f"Bearer {mint('aud', 'ekms.auditor')}"},
        )
    assert response.status_code == 200, response.text
    return [
        {k: e[k] for k in ("action", "result", "reason", "count")}
        | {k: v for k, v in e["details"].items() if k.startswith("justification")}
        for e in response.json()["items"]
    ]


def _sorted(events: list[dict[str, Any]]) -> list[str]:
    """Events of one flush share their time: their order (by id) is not theirs to keep."""
    return sorted(map(str, events))


def _denied(code: str | None = None, text: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "action": "decrypt",
        "result": "denied",
        "reason": "JUSTIFICATION_REQUIRED",
        "count": 1,
    }
    if code:
        row["justification_code"] = code
    if text:
        row["justification_text"] = text
    return row


# --- gRPC -----------------------------------------------------------------------------------------


async def test_grpc_a_required_justification_with_an_allowed_code_decrypts(world: Ekms) -> None:
    blob = await _sealed(world)
    request = pb.DecryptRequest(target=module_target(), ciphertext=blob)
    opened = await world.stub.Decrypt(request, metadata=_md(world, f"{SUPPORT}:ticket 4711"))
    assert opened.plaintext == b"85000"
    batch = await world.stub.DecryptBatch(
        pb.DecryptBatchRequest(items=[pb.DecryptItem(target=module_target(), ciphertext=blob)] * 3),
        metadata=_md(world, "BREAK_GLASS"),
    )
    assert [r.plaintext for r in batch.results] == [b"85000"] * 3
    assert _sorted(await _events(world, "dave")) == _sorted(
        [
            {
                "action": "decrypt",
                "result": "success",
                "reason": None,
                "count": 1,
                "justification_code": SUPPORT,
                "justification_text": "ticket 4711",
            },
            {
                "action": "decrypt",
                "result": "success",
                "reason": None,
                "count": 3,
                "justification_code": "BREAK_GLASS",
            },
        ]
    )


async def test_grpc_a_missing_or_wrong_justification_is_denied_and_audited(world: Ekms) -> None:
    blob = await _sealed(world)
    request = pb.DecryptRequest(target=module_target(), ciphertext=blob)
    missing = await failure(world.stub.Decrypt(request, metadata=_md(world)))
    assert missing == (DENIED, "JUSTIFICATION_REQUIRED")
    wrong = await failure(world.stub.Decrypt(request, metadata=_md(world, "LEGAL_REQUEST:x")))
    assert wrong == (DENIED, "JUSTIFICATION_REQUIRED")
    batch = await world.stub.DecryptBatch(
        pb.DecryptBatchRequest(items=[pb.DecryptItem(target=module_target(), ciphertext=blob)]),
        metadata=_md(world),
    )
    assert item_reason(batch.results[0].status) == (DENIED, "JUSTIFICATION_REQUIRED")
    # one flush: the two denials without a justification are one row of count 2
    assert _sorted(await _events(world, "dave")) == _sorted(
        [{**_denied(), "count": 2}, _denied("LEGAL_REQUEST", "x")]
    )


async def test_grpc_a_malformed_justification_is_invalid_and_nothing_is_recorded(
    world: Ekms,
) -> None:
    blob = await _sealed(world)
    request = pb.DecryptRequest(target=module_target(), ciphertext=blob)
    for raw in MALFORMED:
        code = await failure(world.stub.Decrypt(request, metadata=_md(world, raw)))
        assert code == (INVALID, "JUSTIFICATION_INVALID"), raw
    twice = _md(world, SUPPORT, "BREAK_GLASS")
    assert await failure(world.stub.Decrypt(request, metadata=twice)) == (
        INVALID,
        "JUSTIFICATION_INVALID",
    )
    # even where no justification is required (role billing), a bad one is refused
    billing = world.auth("billing-svc", "billing") + ((HEADER, "PLEASE"),)
    encrypt = pb.EncryptRequest(target=module_target(), plaintext=b"x")
    assert await failure(world.stub.Encrypt(encrypt, metadata=billing)) == (
        INVALID,
        "JUSTIFICATION_INVALID",
    )
    assert await _events(world, "dave") == []


async def test_grpc_a_stream_carries_its_justification(world: Ekms) -> None:
    blob = await _sealed(world)

    async def items() -> AsyncIterator[pb.DecryptItem]:
        for _ in range(2):
            yield pb.DecryptItem(target=module_target(), ciphertext=blob)

    call = world.stub.DecryptStream(items(), metadata=_md(world, SUPPORT))
    assert [r.plaintext async for r in call] == [b"85000", b"85000"]
    unjustified = world.stub.DecryptStream(items(), metadata=_md(world, sub="erin"))
    answers = [r async for r in unjustified]
    assert [item_reason(r.status) for r in answers] == [(DENIED, "JUSTIFICATION_REQUIRED")] * 2
    assert await _events(world, "dave") == [
        {
            "action": "decrypt",
            "result": "success",
            "reason": None,
            "count": 2,
            "justification_code": SUPPORT,
        }
    ]


# --- REST -----------------------------------------------------------------------------------------


async def _decrypt(world: Ekms, blob: bytes, *justifications: str) -> httpx.Response:
    headers = [("Authorization", f"Bearer {mint('frank', 'support')}")]
    headers += [(HEADER, j) for j in justifications]
    async with asgi_client(build_rest_app(world.container)) as api:
        body = {"module": BILLING, "ciphertext": ct.to_text(blob)}
        return await api.post("/api/v1/crypto/decrypt", json=body, headers=headers)


def _problem(response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason


async def test_rest_sent_required_wrong_missing_and_malformed(world: Ekms) -> None:
    blob = await _sealed(world)
    ok = await _decrypt(world, blob, f"{SUPPORT}:case 12")
    assert ok.status_code == 200, ok.text
    _problem(await _decrypt(world, blob), 403, "JUSTIFICATION_REQUIRED")
    _problem(
        await _decrypt(world, blob, "OPERATOR_INITIATED_REVIEW"), 403, "JUSTIFICATION_REQUIRED"
    )
    for raw in [*MALFORMED, NOT_PRINTABLE]:
        _problem(await _decrypt(world, blob, raw), 422, "JUSTIFICATION_INVALID")
    _problem(await _decrypt(world, blob, SUPPORT, SUPPORT), 422, "JUSTIFICATION_INVALID")
    assert _sorted(await _events(world, "frank")) == _sorted(
        [
            {
                "action": "decrypt",
                "result": "success",
                "reason": None,
                "count": 1,
                "justification_code": SUPPORT,
                "justification_text": "case 12",
            },
            _denied(),
            _denied("OPERATOR_INITIATED_REVIEW"),
        ]
    )
