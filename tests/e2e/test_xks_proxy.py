"""Issue 18: ekms as an AWS KMS external key store. The real ``ekms serve`` listeners (REST and
the XKS proxy on loopback ports) on the embedded default; stores and keys made through the
REST admin API; every XKS call signed by a SigV4 client on botocore's signer (``xks_support``).

Covers every route, the success cases and each error class of the spec: bad signature,
unknown key, wrong usage, disabled key, invalid ciphertext, AAD mismatch, malformed bodies;
the rotation overlap of SigV4 credentials; the secondary authorisation; the audit of each call
with its request metadata and the /metrics counters; revoking ekms's own external key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from app.bootstrap import Container, running
from app.cli import cli
from app.infra.settings import Settings
from app.server import _serve_container
from tests.e2e.rest_support import ADMIN, AUDITOR, KEY_MANAGER, SECRET, auth
from tests.e2e.serving import embedded_settings, free_port
from tests.e2e.xks_support import PRINCIPAL, XksClient, metadata

REGION = "eu-west-1"
PREFIX = "/keystores/payments"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class World:
    container: Container
    rest: httpx.AsyncClient
    xks: XksClient
    store: dict[str, Any]
    key: dict[str, Any]  # usage ENCRYPT+DECRYPT, external key id "payments-1"
    data_dir: Path

    async def admin(self, method: str, path: str, role: str = ADMIN, **kw: Any) -> Any:
        response = await self.rest.request(method, path, headers=auth(role), **kw)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    async def new_key(self, **body: Any) -> dict[str, Any]:
        body = {"store_id": self.store["id"], **body}
        return dict(await self.admin("POST", "/api/v1/xks/keys", KEY_MANAGER, json=body))


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Container]:
    async with running(settings) as container:
        stop, listening = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(_serve_container(container, stop, on_listening=listening.set))
        waiter = asyncio.create_task(listening.wait())
        await asyncio.wait({task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        try:
            yield container
        finally:
            waiter.cancel()
            stop.set()
            await asyncio.wait_for(task, timeout=30)


@asynccontextmanager
async def make_world(tmp_path: Path, **settings_values: Any) -> AsyncIterator[World]:
    settings = embedded_settings(
        tmp_path,
        xks_port=free_port(),
        jwt_hs256_secret=SECRET,
        audit_flush_seconds=60,
        **settings_values,
    )
    async with served(settings) as container, httpx.AsyncClient(timeout=30) as http:
        rest = httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=30)
        async with rest:
            created = await rest.post(
                "/api/v1/xks/stores",
                headers=auth(ADMIN),
                json={"name": "payments", "uri_prefix": PREFIX, "region": REGION},
            )
            assert created.status_code == 201, created.text
            store = created.json()
            issued = store["issued_credential"]
            base = f"http://127.0.0.1:{settings.xks_port}{store['xks_proxy_uri_path']}"
            xks = XksClient(base, issued["AccessKeyId"], issued["RawSecretAccessKey"], REGION, http)
            w = World(container, rest, xks, store, {}, tmp_path)
            w.key = await w.new_key(external_key_id="payments-1")
            yield w


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with make_world(tmp_path) as w:
        yield w


def error_name(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["errorName"]


async def encrypt(w: World, plaintext: bytes, aad: bytes | None = None, **more: Any) -> Any:
    body: dict[str, Any] = {
        "requestMetadata": metadata("GenerateDataKey"),
        "plaintext": b64(plaintext),
        "encryptionAlgorithm": "AES_GCM",
        **more,
    }
    if aad is not None:
        body["additionalAuthenticatedData"] = b64(aad)
    return await w.xks.call(f"/keys/{more.pop('key', 'payments-1')}/encrypt", body)


def decrypt_body(sealed: dict[str, str], aad: bytes | None = None, **more: Any) -> Any:
    body: dict[str, Any] = {
        "requestMetadata": metadata("Decrypt"),
        "encryptionAlgorithm": "AES_GCM",
        "ciphertext": sealed["ciphertext"],
        "initializationVector": sealed["initializationVector"],
        "authenticationTag": sealed["authenticationTag"],
        **more,
    }
    if "ciphertextMetadata" in sealed and "ciphertextMetadata" not in more:
        body["ciphertextMetadata"] = sealed["ciphertextMetadata"]
    if aad is not None:
        body["additionalAuthenticatedData"] = b64(aad)
    return body


async def test_health_answers_the_spec_fields(world: World) -> None:
    body = {"requestMetadata": {"kmsRequestId": "r-1", "kmsOperation": "KmsHealthCheck"}}
    response = await world.xks.call("/health", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["xksProxyFleetSize"] >= 1 and answer["xksProxyVendor"] == "ekms"
    assert answer["ekmVendor"] and answer["xksProxyModel"].startswith("ekms")
    assert [d["healthStatus"] for d in answer["ekmFleetDetails"]] == ["ACTIVE"]
    assert response.headers["content-type"].startswith("application/json")


async def test_metadata_names_spec_usage_and_status(world: World) -> None:
    body = {"requestMetadata": metadata("DescribeKey")}
    response = await world.xks.call("/keys/payments-1/metadata", body)
    assert response.json() == {
        "keySpec": "AES_256",
        "keyUsage": ["DECRYPT", "ENCRYPT"],
        "keyStatus": "ENABLED",
    }


async def test_encrypt_then_decrypt_round_trips_with_aad_and_cdiv(world: World) -> None:
    aad = b"project=nile,department=marketing"
    response = await encrypt(
        world, b"Hello World!", aad, ciphertextDataIntegrityValueAlgorithm="SHA_256"
    )
    assert response.status_code == 200, response.text
    sealed = response.json()
    parts = [base64.b64decode(sealed[k]) for k in ("ciphertext", "initializationVector")]
    assert len(parts[0]) == len(b"Hello World!") and len(parts[1]) == 12
    assert len(base64.b64decode(sealed["authenticationTag"])) == 16
    assert len(base64.b64decode(sealed["ciphertextMetadata"])) <= 20
    expected_cdiv = hashlib.sha256(
        aad
        + b"".join(
            base64.b64decode(sealed[k])
            for k in (
                "ciphertextMetadata",
                "initializationVector",
                "ciphertext",
                "authenticationTag",
            )
        )
    ).digest()
    assert base64.b64decode(sealed["ciphertextDataIntegrityValue"]) == expected_cdiv

    opened = await world.xks.call("/keys/payments-1/decrypt", decrypt_body(sealed, aad))
    assert opened.status_code == 200, opened.text
    assert base64.b64decode(opened.json()["plaintext"]) == b"Hello World!"

    no_aad = (await encrypt(world, b"x" * 4300)).json()
    assert "ciphertextDataIntegrityValue" not in no_aad
    again = await world.xks.call("/keys/payments-1/decrypt", decrypt_body(no_aad))
    assert base64.b64decode(again.json()["plaintext"]) == b"x" * 4300


async def test_invalid_ciphertext_and_aad_mismatch_are_invalid_ciphertext(world: World) -> None:
    sealed = (await encrypt(world, b"secret", b"aad-1")).json()
    path = "/keys/payments-1/decrypt"
    wrong_aad = await world.xks.call(path, decrypt_body(sealed, b"aad-2"))
    assert error_name(wrong_aad) == (400, "InvalidCiphertextException")
    missing_aad = await world.xks.call(path, decrypt_body(sealed))
    assert error_name(missing_aad) == (400, "InvalidCiphertextException")
    tag = bytearray(base64.b64decode(sealed["authenticationTag"]))
    tag[0] ^= 1
    flipped = await world.xks.call(
        path, decrypt_body({**sealed, "authenticationTag": b64(bytes(tag))}, b"aad-1")
    )
    assert error_name(flipped) == (400, "InvalidCiphertextException")
    short_iv = decrypt_body({**sealed, "initializationVector": b64(b"\0" * 8)}, b"aad-1")
    assert error_name(await world.xks.call(path, short_iv)) == (400, "InvalidCiphertextException")
    # The metadata cannot be moved into the AAD (the lengths are encoded).
    md = base64.b64decode(sealed["ciphertextMetadata"])
    moved = decrypt_body(sealed, b"aad-1" + md, ciphertextMetadata=b64(b""))
    assert error_name(await world.xks.call(path, moved)) == (400, "InvalidCiphertextException")


@pytest.mark.parametrize(
    "spoil",
    ["secret", "access_key_id", "region", "service", "skew", "body", "no-auth"],
)
async def test_a_bad_signature_is_authentication_failed(world: World, spoil: str) -> None:
    body = {"requestMetadata": metadata("DescribeKey")}
    path = "/keys/payments-1/metadata"
    xks = world.xks
    if spoil == "secret":
        response = await xks.call(path, body, secret=b64(b"\1" * 32))
    elif spoil == "access_key_id":
        response = await xks.call(path, body, access_key_id="A" * 24)
    elif spoil == "region":
        response = await xks.call(path, body, region="us-east-1")
    elif spoil == "service":
        response = await xks.call(path, body, service="kms")
    elif spoil == "skew":
        response = await xks.call(path, body, at=datetime.now(UTC) - timedelta(minutes=6))
    elif spoil == "body":
        from tests.e2e.xks_support import signed_headers

        url = xks.base_url + path
        headers = signed_headers(url, b'{"a":1}', xks.access_key_id, xks.secret, REGION)
        response = await xks.http.post(url, content=b'{"a":2}', headers=headers)
    else:
        response = await xks.http.post(xks.base_url + path, json=body)
    assert error_name(response) == (401, "AuthenticationFailedException")


async def test_signed_a_little_in_the_past_is_accepted(world: World) -> None:
    body = {"requestMetadata": metadata("DescribeKey")}
    at = datetime.now(UTC) - timedelta(minutes=2)
    response = await world.xks.call("/keys/payments-1/metadata", body, at=at)
    assert response.status_code == 200, response.text


async def test_unknown_key_path_and_method(world: World) -> None:
    body = {"requestMetadata": metadata("DescribeKey")}
    unknown = await world.xks.call("/keys/nope/metadata", body)
    assert error_name(unknown) == (404, "KeyNotFoundException")
    other = XksClient(
        world.xks.base_url.replace(PREFIX, "/keystores/other"),
        world.xks.access_key_id,
        world.xks.secret,
        REGION,
        world.xks.http,
    )
    assert error_name(await other.call("/health", body)) == (404, "InvalidUriPathException")
    bad_op = await world.xks.call("/keys/payments-1/sign", body)
    assert error_name(bad_op) == (404, "InvalidUriPathException")
    got = await world.xks.http.get(world.xks.base_url + "/keys/payments-1/metadata")
    assert got.status_code == 405 and got.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"not json", None),
        (None, {"plaintext": b64(b"x"), "encryptionAlgorithm": "AES_GCM"}),
        (None, {"requestMetadata": {"kmsOperation": "Encrypt"}, "plaintext": b64(b"x")}),
        (None, {"requestMetadata": metadata(), "encryptionAlgorithm": "AES_GCM"}),
        (
            None,
            {"requestMetadata": metadata(), "plaintext": "%%%", "encryptionAlgorithm": "AES_GCM"},
        ),
        (
            None,
            {
                "requestMetadata": metadata(),
                "plaintext": b64(b"x"),
                "encryptionAlgorithm": "AES_CBC",
            },
        ),
        (None, {"requestMetadata": metadata(), "plaintext": 7, "encryptionAlgorithm": "AES_GCM"}),
    ],
)
async def test_malformed_bodies_are_validation_errors(
    world: World, raw: bytes | None, body: Any
) -> None:
    response = await world.xks.call("/keys/payments-1/encrypt", body, raw=raw)
    assert error_name(response) == (400, "ValidationException")


async def test_wrong_usage_and_disabled_key(world: World) -> None:
    only_encrypt = await world.new_key(external_key_id="enc-only", usage=["ENCRYPT"])
    sealed = (await encrypt(world, b"v", key="enc-only")).json()
    refused = await world.xks.call("/keys/enc-only/decrypt", decrypt_body(sealed))
    assert error_name(refused) == (400, "InvalidKeyUsageException")
    await world.admin(
        "PATCH", f"/api/v1/xks/keys/{only_encrypt['id']}", KEY_MANAGER, json={"enabled": False}
    )
    disabled = await encrypt(world, b"v", key="enc-only")
    assert error_name(disabled) == (400, "InvalidStateException")
    described = await world.xks.call(
        "/keys/enc-only/metadata", {"requestMetadata": metadata("DescribeKey")}
    )
    assert described.json()["keyStatus"] == "DISABLED"
    assert described.json()["keyUsage"] == ["ENCRYPT"]


async def test_secondary_authorisation_on_principal_and_operation(world: World) -> None:
    await world.new_key(
        external_key_id="alice-only",
        allowed_principals=[PRINCIPAL],
        allowed_operations=["GenerateDataKey", "Decrypt"],
    )
    assert (await encrypt(world, b"v", key="alice-only")).status_code == 200
    body = {
        "requestMetadata": metadata("Encrypt", principal="arn:aws:iam::999999999999:user/Eve"),
        "plaintext": b64(b"v"),
        "encryptionAlgorithm": "AES_GCM",
    }
    eve = await world.xks.call("/keys/alice-only/encrypt", body)
    assert error_name(eve) == (403, "AccessDeniedException")
    body["requestMetadata"] = metadata("ReEncrypt")
    reencrypt = await world.xks.call("/keys/alice-only/encrypt", body)
    assert error_name(reencrypt) == (403, "AccessDeniedException")


async def test_credential_rotation_overlaps_then_the_old_one_stops(world: World) -> None:
    path = f"/api/v1/xks/stores/{world.store['id']}"
    rotated = await world.admin("PATCH", path, json={"add_credential": True})
    new = rotated["issued_credential"]
    assert len(rotated["credentials"]) == 2
    body = {"requestMetadata": {"kmsRequestId": "r", "kmsOperation": "KmsHealthCheck"}}
    old_ok = await world.xks.call("/health", body)
    new_ok = await world.xks.call(
        "/health", body, access_key_id=new["AccessKeyId"], secret=new["RawSecretAccessKey"]
    )
    assert old_ok.status_code == new_ok.status_code == 200
    third = await world.rest.patch(path, headers=auth(ADMIN), json={"add_credential": True})
    assert third.status_code == 409
    await world.admin("PATCH", path, json={"remove_access_key_id": world.xks.access_key_id})
    assert error_name(await world.xks.call("/health", body)) == (
        401,
        "AuthenticationFailedException",
    )
    still = await world.xks.call(
        "/health", body, access_key_id=new["AccessKeyId"], secret=new["RawSecretAccessKey"]
    )
    assert still.status_code == 200
    listed = await world.admin("GET", "/api/v1/xks/stores", AUDITOR)
    assert (
        "RawSecretAccessKey" not in str(listed) and listed["items"][0]["issued_credential"] is None
    )


async def test_every_call_is_audited_with_its_request_metadata_and_counted(world: World) -> None:
    body = {
        "requestMetadata": metadata("GenerateDataKey", kmsViaService="ebs"),
        "plaintext": b64(b"v"),
        "encryptionAlgorithm": "AES_GCM",
    }
    request_id = body["requestMetadata"]["kmsRequestId"]
    assert (await world.xks.call("/keys/payments-1/encrypt", body)).status_code == 200
    assert (await world.xks.call("/keys/nope/encrypt", body)).status_code == 404
    await world.container.ctx.audit.flush()
    events = await world.admin(
        "GET", "/api/v1/audit", AUDITOR, params={"action": "xks.encrypt", "limit": 50}
    )
    mine = [e for e in events["items"] if e["details"].get("kmsRequestId") == request_id]
    assert {(e["result"], e["reason"], e["target"]) for e in mine} == {
        ("success", None, "xks:payments/payments-1"),
        ("failure", "KeyNotFoundException", "xks:payments/nope"),
    }
    assert all(e["actor"] == PRINCIPAL for e in mine)
    assert all(e["details"]["kmsViaService"] == "ebs" for e in mine)
    assert all(e["details"]["kmsOperation"] == "GenerateDataKey" for e in mine)
    scraped = await world.rest.get(
        f"http://127.0.0.1:{world.container.settings.metrics_port}/metrics"
    )
    counted = 'ekms_crypto_operations_total{module="xks:payments/payments-1",'
    assert counted + 'operation="xks.encrypt",result="success"} 1.0' in scraped.text


def local_key(data_dir: Path, command: str) -> None:
    with capture_logs():
        result = CliRunner().invoke(
            cli,
            ["local-key", command],
            env={"EKMS_DATA_DIR": str(data_dir), "EKMS_KMS_PROVIDER": "local"},
        )
    assert result.exit_code == 0, result.output


async def test_revoking_the_external_key_stops_xks_at_once(world: World) -> None:
    aad = b"volume=vol-1"
    sealed = (await encrypt(world, b"data key", aad)).json()
    path = "/keys/payments-1/decrypt"
    assert (await world.xks.call(path, decrypt_body(sealed, aad))).status_code == 200

    local_key(world.data_dir, "disable")
    await world.admin("POST", "/api/v1/ekms/sync", KEY_MANAGER)
    stopped = await world.xks.call(path, decrypt_body(sealed, aad))
    assert error_name(stopped) == (400, "InvalidStateException")
    health = {"requestMetadata": {"kmsRequestId": "r", "kmsOperation": "KmsHealthCheck"}}
    assert error_name(await world.xks.call("/health", health)) == (400, "InvalidStateException")

    local_key(world.data_dir, "enable")
    await world.admin("POST", "/api/v1/ekms/sync", KEY_MANAGER)
    again = await world.xks.call(path, decrypt_body(sealed, aad))
    assert base64.b64decode(again.json()["plaintext"]) == b"data key"


async def test_kek_rotation_reseals_xks_keys_and_credentials(world: World) -> None:
    sealed = (await encrypt(world, b"before rotation")).json()
    await world.admin("POST", "/api/v1/ekms/kek/rotate", KEY_MANAGER)
    opened = await world.xks.call("/keys/payments-1/decrypt", decrypt_body(sealed))
    assert opened.status_code == 200, opened.text
    assert base64.b64decode(opened.json()["plaintext"]) == b"before rotation"


async def test_deleting_a_key_then_its_store(world: World) -> None:
    await world.admin("DELETE", f"/api/v1/xks/keys/{world.key['id']}", KEY_MANAGER)
    body = {"requestMetadata": metadata("DescribeKey")}
    gone = await world.xks.call("/keys/payments-1/metadata", body)
    assert error_name(gone) == (404, "KeyNotFoundException")
    await world.admin("DELETE", f"/api/v1/xks/stores/{world.store['id']}")
    assert error_name(await world.xks.call("/health", body)) == (404, "InvalidUriPathException")
    missing = await world.rest.get(f"/api/v1/xks/stores/{world.store['id']}", headers=auth(AUDITOR))
    assert missing.status_code == 404


async def test_a_store_over_its_quota_is_throttled(tmp_path: Path) -> None:
    async with make_world(tmp_path, rate_limit_per_caller=0.001, rate_limit_burst=2) as w:
        body = {"requestMetadata": metadata("DescribeKey")}
        answers = [await w.xks.call("/keys/payments-1/metadata", body) for _ in range(3)]
        assert [a.status_code for a in answers[:2]] == [200, 200]
        assert error_name(answers[2]) == (429, "ThrottlingException")


async def test_secrets_and_plaintexts_stay_out_of_logs_bodies_and_the_database(
    world: World,
) -> None:
    secret = world.xks.secret
    plaintext = b"do-not-log-this-data-key-0123456"
    with capture_logs() as logs:
        sealed = (await encrypt(world, plaintext)).json()
        opened = await world.xks.call("/keys/payments-1/decrypt", decrypt_body(sealed))
        bad = await world.xks.call("/keys/payments-1/metadata", {}, secret=b64(b"\2" * 32))
        await world.container.ctx.audit.flush()
    assert base64.b64decode(opened.json()["plaintext"]) == plaintext
    listed = await world.admin("GET", "/api/v1/xks/stores", AUDITOR)
    database = b"".join(p.read_bytes() for p in world.data_dir.glob("*.db*"))
    assert b"xks_stores" in database  # the schema is there: the scan is not of nothing
    for text in (repr(logs), bad.text, str(listed)):
        assert secret not in text and b64(plaintext) not in text
    for form in (secret.encode(), base64.b64decode(secret), plaintext, b64(plaintext).encode()):
        assert form not in database
