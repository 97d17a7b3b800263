"""The XKS proxy on several replicas (one Postgres, moto's KMS as ekms's external key): a store
and a key made on one replica serve on the others from their snapshots, and disabling ekms's
own external key (then the sync, on one replica) makes XKS decrypt fail on every replica.

Each replica is a full container; the proxy is the use case the listener calls, handed
requests signed with botocore's signer (``tests/e2e/xks_support``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from app.application.configuration import ConfigInput, configure_ekms
from app.application.ports import SignedRequest
from app.application.sync import sync_external_key
from app.application.xks import admin
from app.application.xks.proxy import XksCall, XksProxy
from app.bootstrap import Container, running
from app.domain.values import Caller, KmsProvider
from app.domain.xks import XksErrorName, XksOperation, XksRejected
from app.infra.settings import Settings
from app.infra.sigv4 import BotocoreSigV4Verifier
from tests.e2e.xks_support import metadata, signed_headers

ADMIN = Caller("admin", frozenset({"ekms.admin", "ekms.key_manager"}))
HOST = "xks.example.com"
REGION = "eu-west-1"


@pytest.fixture
async def replicas(
    pg_url: str, moto_server: str, aws_env: str, kms_key: str, tmp_path: Path
) -> AsyncIterator[list[Container]]:
    settings = Settings(
        database_url=pg_url,
        kms_provider="aws",
        aws_endpoint_url=moto_server,
        allow_insecure_kms_endpoint=True,
        aws_region=aws_env,
        data_dir=tmp_path,
        jwt_hs256_secret="y" * 40,
        scheduler_enabled=False,
        reconcile_seconds=300,  # what crosses is NOTIFY's, not the reconcile backstop's
    )
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(running(settings)) for _ in range(3)]
        await configure_ekms(nodes[0].ctx, ADMIN, ConfigInput(KmsProvider.AWS, kms_key))
        yield nodes


class Signer:
    def __init__(self, prefix: str, access_key_id: str, secret: str) -> None:
        self.prefix, self.access_key_id, self.secret = prefix, access_key_id, secret

    def call(self, operation: XksOperation, key: str | None, body: dict[str, Any]) -> XksCall:
        path = f"{self.prefix}/kms/xks/v1/" + (f"keys/{key}/{operation}" if key else "health")
        content = json.dumps(body).encode()
        headers = signed_headers(
            f"https://{HOST}{path}", content, self.access_key_id, self.secret, REGION
        )
        lower = {k.lower(): v for k, v in headers.items()} | {"host": HOST}
        return XksCall(self.prefix, operation, key, SignedRequest("POST", path, lower, content))


async def _until_rejected(proxy: XksProxy, call: XksCall, limit: float = 10.0) -> XksRejected:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        try:
            await proxy.handle(call)
        except XksRejected as exc:
            return exc
        await asyncio.sleep(0.005)
    raise AssertionError(f"still served after {limit} s")


async def test_a_store_made_on_one_replica_serves_on_all_and_revocation_stops_all(
    replicas: list[Container], kms_admin: Any, kms_key: str
) -> None:
    first = replicas[0].ctx
    store, issued = await admin.create_store(
        first, ADMIN, admin.StoreInput("payments", "/p", REGION)
    )
    await admin.create_key(first, ADMIN, admin.KeyInput(store.id, "k1"))
    proxies = [XksProxy(n.ctx, BotocoreSigV4Verifier(), model="ekms test") for n in replicas]
    signer = Signer("/p", issued.access_key_id, issued.secret_access_key)
    encrypt = {
        "requestMetadata": metadata("Encrypt"),
        "plaintext": base64.b64encode(b"data key").decode(),
        "encryptionAlgorithm": "AES_GCM",
    }
    # The store reached the other replicas' snapshots (NOTIFY): poll until it is there.
    started = time.perf_counter()
    while True:
        try:
            sealed = await proxies[2].handle(signer.call(XksOperation.ENCRYPT, "k1", encrypt))
            break
        except XksRejected as exc:
            assert exc.name is XksErrorName.INVALID_URI_PATH
            assert time.perf_counter() - started < 10, "the store did not reach replica 2"
            await asyncio.sleep(0.005)
    decrypt = {"requestMetadata": metadata("Decrypt"), "encryptionAlgorithm": "AES_GCM", **sealed}
    opened = await proxies[1].handle(signer.call(XksOperation.DECRYPT, "k1", decrypt))
    assert base64.b64decode(opened["plaintext"]) == b"data key"

    kms_admin.disable_key(KeyId=kms_key)
    await sync_external_key(first)
    for proxy in proxies:
        refused = await _until_rejected(proxy, signer.call(XksOperation.DECRYPT, "k1", decrypt))
        assert refused.name is XksErrorName.INVALID_STATE


async def test_deleting_a_store_erases_its_dead_rows_on_postgres(replicas: list[Container]) -> None:
    ctx = replicas[0].ctx
    store, _ = await admin.create_store(ctx, ADMIN, admin.StoreInput("gone", "/gone", REGION))
    await admin.create_key(ctx, ADMIN, admin.KeyInput(store.id, "k"))
    with capture_logs() as logs:
        await admin.delete_store(ctx, ADMIN, store.id)  # VACUUMs xks_keys and xks_stores
    assert not [e for e in logs if e["event"] == "dead_rows_not_erased"], logs
    async with ctx.uow() as uow:
        assert await uow.xks_stores.list() == [] and await uow.xks_keys.list() == []
