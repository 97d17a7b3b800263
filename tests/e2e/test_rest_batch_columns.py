"""The REST batch routes on the columns path (``CryptoService.run_columns``): every item of a
batch that mixes every kind of item (served, an unknown module, two targets, a malformed
or tampered ciphertext, the wrong context, a draft module, an inactive field configuration,
items interleaving targets) answers what the same item answers alone on the single route, in
order, with its id (the problem's status, reason and type; a single route may word the
detail of a body that does not validate otherwise); and the audit counts are those of the
items one by one. See conftest."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.application.ports.persistence import AuditQuery
from app.bootstrap import build_rest_app
from tests.e2e.conftest import BILLING, DRAFT, Ekms, mint
from tests.e2e.rest_support import asgi_client

C = "/api/v1/crypto"
FIELD = {"table": "employees", "column": "salary"}
LEGACY = {"table": "employees", "column": "legacy"}
MODULE = {"module": BILLING}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
async def api(ekms: Ekms) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(build_rest_app(ekms.container)) as client:
        yield client


async def _post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {mint('billing-svc', 'billing')}"}
    return await api.post(f"{C}/{path}", json=body, headers=headers)


def _alone(default: dict[str, str], item: dict[str, Any]) -> dict[str, Any]:
    """The single route's body for a batch item: its own target, or the batch's."""
    own = {k: item[k] for k in ("module", "table", "column") if k in item}
    return {**(own or default), **{k: v for k, v in item.items() if k not in own and k != "id"}}


def _answer(status: int, body: dict[str, Any]) -> tuple[Any, ...]:
    """What a single route answered, or a batch row, in one shape: (status, reason, data)."""
    if body.get("error") is not None or status != 200:
        problem = body.get("error") or body
        return (problem["status"], problem["reason"], problem["type"])
    return (200, body.get("key_version"), body.get("plaintext"), body.get("changed"))


async def _audit(ekms: Ekms) -> Counter[tuple[Any, ...]]:
    ctx = ekms.container.ctx
    await ctx.audit.flush()
    async with ctx.uow() as uow:
        page = await uow.audit.query(AuditQuery(actor="billing-svc", limit=1000))
    counts: Counter[tuple[Any, ...]] = Counter()
    for e in page:
        counts[(e.action, e.result, e.module, e.target, e.reason)] += e.count
    return counts


async def _same_as_alone(
    ekms: Ekms, api: httpx.AsyncClient, route: str, default: dict[str, str], items: list[Any]
) -> list[dict[str, Any]]:
    """The batch's rows; asserts each is what its item answers alone, audit included."""
    before = await _audit(ekms)
    response = await _post(api, f"{route}-batch", {**default, "items": items})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["results"]
    after_batch = await _audit(ekms)
    alone = []
    for item in items:
        single = await _post(api, route, _alone(default, item))
        alone.append(_answer(single.status_code, single.json()))
    after_alone = await _audit(ekms)
    assert [r["id"] for r in rows] == [i["id"] for i in items]
    assert [_answer(200, r) for r in rows] == alone
    assert after_batch - before == after_alone - after_batch
    return rows


async def test_encrypt_batch_rows_are_the_single_routes_answers(
    ekms: Ekms, api: httpx.AsyncClient
) -> None:
    items = [
        {"id": "a", "plaintext": b64(b"85000"), "context": b64(b"r1")},
        {"id": "m", **MODULE, "plaintext": b64(b"42")},
        {"id": "b", "plaintext": b64(b"")},
        {"id": "unknown", "module": "global.unknown", "plaintext": b64(b"x")},
        {"id": "both", "module": BILLING, "table": "t", "column": "c", "plaintext": ""},
        {"id": "draft", "module": DRAFT, "plaintext": b64(b"d")},
        {"id": "legacy", **LEGACY, "plaintext": b64(b"l")},
        {"id": "c", "plaintext": b64(b"85001"), "context": b64(b"r2")},
        {"id": "m2", **MODULE, "plaintext": b64(b"43")},
    ]
    rows = await _same_as_alone(ekms, api, "encrypt", FIELD, items)
    assert [r["error"] is None for r in rows] == [True] * 3 + [False] * 4 + [True] * 2
    opened = await _post(
        api, "decrypt", {**FIELD, "ciphertext": rows[0]["ciphertext"], "context": b64(b"r1")}
    )
    assert opened.json()["plaintext"] == b64(b"85000")


async def test_decrypt_and_rewrap_batch_rows_are_the_single_routes_answers(
    ekms: Ekms, api: httpx.AsyncClient
) -> None:
    sealed = (
        await _post(
            api,
            "encrypt-batch",
            {
                **FIELD,
                "items": [
                    {"plaintext": b64(b"85000"), "context": b64(b"r1")},
                    {**MODULE, "plaintext": b64(b"42")},
                    {"plaintext": b64(b"")},
                ],
            },
        )
    ).json()["results"]
    field_ct, module_ct, empty_ct = (r["ciphertext"] for r in sealed)
    raw = bytearray(base64.b64decode(field_ct.removeprefix("ekms:v1:") + "=="))
    raw[-1] ^= 1
    tampered = "ekms:v1:" + base64.b64encode(bytes(raw)).decode().rstrip("=")
    items = [
        {"id": "a", "ciphertext": field_ct, "context": b64(b"r1")},
        {"id": "ctx", "ciphertext": field_ct, "context": b64(b"r2")},
        {"id": "m", **MODULE, "ciphertext": module_ct},
        {"id": "cross", **MODULE, "ciphertext": field_ct, "context": b64(b"r1")},
        {"id": "junk", "ciphertext": "not-a-ciphertext"},
        {"id": "tampered", "ciphertext": tampered, "context": b64(b"r1")},
        {"id": "none", "module": "global.unknown", "ciphertext": module_ct},
        {"id": "legacy", **LEGACY, "ciphertext": field_ct, "context": b64(b"r1")},
        {"id": "empty", "ciphertext": empty_ct},
        {"id": "a2", "ciphertext": field_ct, "context": b64(b"r1")},
    ]
    rows = await _same_as_alone(ekms, api, "decrypt", FIELD, items)
    opened = [rows[i]["plaintext"] for i in (0, 2, 8, 9)]
    assert opened == [b64(b"85000"), b64(b"42"), "", b64(b"85000")]
    rewrapped = await _same_as_alone(ekms, api, "rewrap", FIELD, items)
    assert [r["changed"] for r in rewrapped if r["error"] is None] == [False] * 4
