"""REST parity of the data plane (/api/v1/crypto/*-batch, rewrap, data-key, mac) over the gRPC
world's container (Postgres, moto's KMS server): per-item problems with the single routes'
types, the batch limit, MAP enforcement per operation, contexts, tampering, rotation, and
results that cross between REST and gRPC (one use case behind both). See conftest."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from structlog.testing import capture_logs

from app.application.modules import rotate_module_key
from app.bootstrap import build_rest_app
from tests.e2e.conftest import ADMIN, BILLING, Ekms, field_target, mint
from tests.e2e.rest_support import asgi_client

C = "/api/v1/crypto"
FIELD = {"table": "employees", "column": "salary"}
MODULE = {"module": BILLING}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
async def api(ekms: Ekms) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(build_rest_app(ekms.container)) as client:
        yield client


async def _post(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], *roles: str, sub: str = "billing-svc"
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {mint(sub, *(roles or ('billing',)))}"}
    return await api.post(f"{C}/{path}", json=body, headers=headers)


async def _ok(api: httpx.AsyncClient, path: str, body: dict[str, Any], *roles: str) -> Any:
    response = await _post(api, path, body, *roles)
    assert response.status_code == 200, response.text
    return response.json()


def _problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["reason"]) == (status, reason)
    assert body["type"] == f"https://ekms.dev/problems/{reason.lower()}"
    return body


def _item_problem(result: dict[str, Any]) -> tuple[int, str, str]:
    error = result["error"]
    assert "ciphertext" not in result or result["ciphertext"] is None
    return error["status"], error["reason"], error["type"]


def _kind(status: int, reason: str) -> tuple[int, str, str]:
    return status, reason, f"https://ekms.dev/problems/{reason.lower()}"


# --- batches and rewrap --------------------------------------------------------------------------


async def test_batches_answer_each_item_with_its_own_problem(api: httpx.AsyncClient) -> None:
    sealed = await _ok(
        api,
        "encrypt-batch",
        {
            **FIELD,
            "items": [
                {"id": "a", "plaintext": b64(b"85000"), "context": b64(b"r1")},
                {"id": "unknown", "module": "global.unknown", "plaintext": b64(b"x")},
                {"id": "both", "module": BILLING, "table": "t", "column": "c", "plaintext": ""},
                {"id": "m", **MODULE, "plaintext": b64(b"42")},
            ],
        },
    )
    results = sealed["results"]
    assert [r["id"] for r in results] == ["a", "unknown", "both", "m"]
    assert results[0]["ciphertext"].startswith("ekms:v1:") and results[0]["key_version"] == 1
    assert _item_problem(results[1]) == _kind(404, "MODULE_NOT_FOUND")
    assert _item_problem(results[2]) == _kind(422, "INVALID_INPUT")
    opened = await _ok(
        api,
        "decrypt-batch",
        {
            **FIELD,
            "items": [
                {"id": "a", "ciphertext": results[0]["ciphertext"], "context": b64(b"r1")},
                {"id": "ctx", "ciphertext": results[0]["ciphertext"], "context": b64(b"r2")},
                {"id": "junk", "ciphertext": "not-a-ciphertext"},
                {"id": "m", **MODULE, "ciphertext": results[3]["ciphertext"]},
            ],
        },
    )
    got = opened["results"]
    assert (got[0]["plaintext"], got[3]["plaintext"]) == (b64(b"85000"), b64(b"42"))
    assert _item_problem(got[1]) == _item_problem(got[2]) == _kind(400, "DECRYPTION_FAILED")
    # The single route answers the same problem for the same item.
    single = await _post(
        api, "decrypt", {**FIELD, "ciphertext": results[0]["ciphertext"], "context": b64(b"r2")}
    )
    _problem(single, 400, "DECRYPTION_FAILED")


async def test_a_batch_over_the_limit_is_refused_whole(ekms: Ekms, api: httpx.AsyncClient) -> None:
    limit = ekms.container.settings.max_batch_items
    items = [{"plaintext": b64(b"x")}] * (limit + 1)
    _problem(await _post(api, "encrypt-batch", {**MODULE, "items": items}), 422, "INVALID_INPUT")
    at_limit = await _ok(api, "encrypt-batch", {**MODULE, "items": items[:limit]})
    assert len(at_limit["results"]) == limit
    over = [{"ciphertext": "ekms:v1:AQE"}] * (limit + 1)
    for path in ("decrypt-batch", "rewrap-batch"):
        _problem(await _post(api, path, {**MODULE, "items": over}), 422, "INVALID_INPUT")


async def test_rewrap_and_rewrap_batch_move_values_after_rotation(
    ekms: Ekms, api: httpx.AsyncClient
) -> None:
    made = await _ok(
        api,
        "encrypt-batch",
        {
            **FIELD,
            "items": [{"plaintext": b64(b"v%d" % i), "context": b64(b"r%d" % i)} for i in range(3)],
        },
    )
    old = [r["ciphertext"] for r in made["results"]]
    same = await _ok(api, "rewrap", {**FIELD, "ciphertext": old[0], "context": b64(b"r0")})
    assert (same["ciphertext"], same["key_version"], same["changed"]) == (old[0], 1, False)
    await rotate_module_key(ekms.container.ctx, ADMIN, BILLING)
    moved = await _ok(api, "rewrap", {**FIELD, "ciphertext": old[0], "context": b64(b"r0")})
    assert (moved["key_version"], moved["changed"]) == (2, True)
    batch = await _ok(
        api,
        "rewrap-batch",
        {
            **FIELD,
            "items": [
                {"id": "1", "ciphertext": old[1], "context": b64(b"r1")},
                {"id": "wrong", "ciphertext": old[2], "context": b64(b"r9")},
                {"id": "2", "ciphertext": old[2], "context": b64(b"r2")},
                {"id": "moved", "ciphertext": moved["ciphertext"], "context": b64(b"r0")},
            ],
        },
    )
    got = {r["id"]: r for r in batch["results"]}
    assert (got["1"]["key_version"], got["1"]["changed"]) == (2, True)
    assert _item_problem(got["wrong"]) == _kind(400, "DECRYPTION_FAILED")
    assert (got["moved"]["ciphertext"], got["moved"]["changed"]) == (moved["ciphertext"], False)
    opened = await _ok(
        api, "decrypt", {**FIELD, "ciphertext": got["2"]["ciphertext"], "context": b64(b"r2")}
    )
    assert opened == {"plaintext": b64(b"v2"), "key_version": 2}
    # rewrap needs the rewrap operation: the writer role has encrypt only.
    denied = await _post(
        api, "rewrap", {**FIELD, "ciphertext": old[1], "context": b64(b"r1")}, "writer"
    )
    _problem(denied, 403, "MAP_REJECTED")
    batch_denied = await _ok(
        api, "rewrap-batch", {**FIELD, "items": [{"ciphertext": old[1]}]}, "writer"
    )
    assert _item_problem(batch_denied["results"][0]) == _kind(403, "MAP_REJECTED")


# --- data keys -----------------------------------------------------------------------------------


async def test_data_keys_round_trip_and_are_authorised_as_encrypt_and_decrypt(
    api: httpx.AsyncClient,
) -> None:
    made = await _ok(api, "data-key", {**MODULE, "context": b64(b"doc-7")})
    key = base64.b64decode(made["plaintext_key"])
    assert len(key) == 32 and made["sealed_key"].startswith("ekms:v1:")
    opened = await _ok(
        api,
        "data-key/decrypt",
        {**MODULE, "sealed_key": made["sealed_key"], "context": b64(b"doc-7")},
    )
    assert opened == {"plaintext_key": made["plaintext_key"], "key_version": 1}
    sealed_only = await _ok(
        api, "data-key", {**FIELD, "key_spec": "AES_128", "include_plaintext": False}, "writer"
    )
    assert sealed_only["plaintext_key"] is None
    denied = await _post(
        api, "data-key/decrypt", {**FIELD, "sealed_key": sealed_only["sealed_key"]}, "writer"
    )
    _problem(denied, 403, "MAP_REJECTED")
    short = await _ok(api, "data-key/decrypt", {**FIELD, "sealed_key": sealed_only["sealed_key"]})
    assert len(base64.b64decode(short["plaintext_key"])) == 16
    _problem(await _post(api, "data-key", MODULE, "blocked", sub="someone"), 403, "MAP_REJECTED")
    sealed = made["sealed_key"]
    tampered = sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB")
    for body in (
        {**MODULE, "sealed_key": sealed, "context": b64(b"doc-8")},
        {**MODULE, "sealed_key": tampered, "context": b64(b"doc-7")},
        {**FIELD, "sealed_key": sealed, "context": b64(b"doc-7")},
        {**MODULE, "sealed_key": "ekms:v1:AQE", "context": b64(b"doc-7")},
    ):
        _problem(await _post(api, "data-key/decrypt", body), 400, "DECRYPTION_FAILED")
    _problem(await _post(api, "data-key", {**MODULE, "key_spec": "DES"}), 422, "INVALID_INPUT")


async def test_a_data_key_from_grpc_opens_over_rest_after_rotation_and_rewrap(
    ekms: Ekms, api: httpx.AsyncClient
) -> None:
    made = await ekms.stub.GenerateDataKey(
        pb.GenerateDataKeyRequest(target=field_target(), context=b"doc-7"),
        metadata=ekms.auth("billing-svc", "billing"),
    )
    sealed = "ekms:v1:" + base64.urlsafe_b64encode(made.sealed_key).decode().rstrip("=")
    await rotate_module_key(ekms.container.ctx, ADMIN, BILLING)
    body = {**FIELD, "sealed_key": sealed, "context": b64(b"doc-7")}
    opened = await _ok(api, "data-key/decrypt", body)
    assert opened == {"plaintext_key": b64(made.plaintext_key), "key_version": 1}
    moved = await _ok(api, "rewrap", {**FIELD, "ciphertext": sealed, "context": b64(b"doc-7")})
    assert moved["key_version"] == 2
    opened = await _ok(api, "data-key/decrypt", {**body, "sealed_key": moved["ciphertext"]})
    assert opened == {"plaintext_key": b64(made.plaintext_key), "key_version": 2}


# --- MACs ----------------------------------------------------------------------------------------


async def test_macs_over_rest_verify_over_grpc_and_survive_rotation(
    ekms: Ekms, api: httpx.AsyncClient
) -> None:
    value = {**FIELD, "value": b64(b"alice@example.com"), "context": b64(b"tenant-1")}
    v1 = await _ok(api, "mac", value)
    assert v1["key_version"] == 1 and len(base64.b64decode(v1["mac"])) == 54
    assert (await _ok(api, "mac", value))["mac"] == v1["mac"]
    verified = await ekms.stub.VerifyMac(
        pb.VerifyMacRequest(
            target=field_target(),
            value=b"alice@example.com",
            mac=base64.b64decode(v1["mac"]),
            context=b"tenant-1",
        ),
        metadata=ekms.auth("billing-svc", "billing"),
    )
    assert verified.key_version == 1
    await rotate_module_key(ekms.container.ctx, ADMIN, BILLING)
    assert await _ok(api, "mac/verify", {**value, "mac": v1["mac"]}) == {"key_version": 1}
    v2 = await _ok(api, "mac", value)
    assert v2["key_version"] == 2 and v2["mac"] != v1["mac"]
    assert (await _ok(api, "mac", {**value, "key_version": 1}))["mac"] == v1["mac"]
    tag = base64.b64decode(v1["mac"])
    for body in (
        {**value, "value": b64(b"bob@example.com"), "mac": v1["mac"]},
        {**value, "context": b64(b"tenant-2"), "mac": v1["mac"]},
        {**value, **MODULE, "table": None, "column": None, "mac": v1["mac"]},
        {**value, "mac": b64(tag[:-1] + bytes([tag[-1] ^ 1]))},
        {**value, "mac": b64(tag[:30])},
    ):
        _problem(await _post(api, "mac/verify", body), 400, "MAC_MISMATCH")
    _problem(await _post(api, "mac", value, "writer", sub="ingest"), 403, "MAP_REJECTED")
    denied = await _post(api, "mac/verify", {**value, "mac": v1["mac"]}, "writer", sub="ingest")
    _problem(denied, 403, "MAP_REJECTED")
    _problem(await _post(api, "mac", {**value, "key_version": 9}), 404, "KEY_VERSION_NOT_FOUND")


async def test_plaintext_data_keys_never_reach_the_logs(ekms: Ekms, api: httpx.AsyncClient) -> None:
    with capture_logs() as logs:
        made = await _ok(api, "data-key", {**MODULE, "context": b64(b"doc-7")})
        body = {**MODULE, "sealed_key": made["sealed_key"], "context": b64(b"doc-7")}
        await _ok(api, "data-key/decrypt", body)
        _problem(
            await _post(api, "data-key/decrypt", {**body, "context": b64(b"x")}),
            400,
            "DECRYPTION_FAILED",
        )
        await ekms.container.ctx.audit.flush()
    key = base64.b64decode(made["plaintext_key"])
    assert logs  # the requests were logged
    text = repr(logs)
    for form in (made["plaintext_key"], key.hex(), repr(key)[2:-1]):
        assert form not in text
