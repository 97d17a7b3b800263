"""Modules outside the external wrap against real parts: Postgres, moto's KMS server over HTTP,
the REST app, two replicas on one database (issue 14, item 3)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from app.application.local_kek import LOCAL_KEK_REF
from app.application.sync import sync_external_key
from app.domain.keys import KeyEncryptionKey
from app.domain.values import ExternalKeyStatus
from app.infra.kms.local import LocalKms
from app.infra.settings import Settings
from tests.chain_support import aws_settings
from tests.e2e.rest_support import AUDITOR, KEY_MANAGER, SECRET, Rest, b64, rest_app
from tests.fixtures.db import dump_all_tables

EXTERNAL = "global.payroll"
LOCAL = "global.catalog"
APP = "svc"
ROOT_KEY = base64.b64encode(os.urandom(32)).decode()


def _settings(pg_url: str, moto: str, tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {"local_root_key": ROOT_KEY, "audit_flush_seconds": 60} | extra
    return aws_settings(pg_url, moto, tmp_path, secret=SECRET, **values)


@asynccontextmanager
async def _replicas(
    pg_url: str, moto: str, tmp_path: Path, count: int
) -> AsyncIterator[list[Rest]]:
    async with AsyncExitStack() as stack:
        nodes = []
        for index in range(count):
            data_dir = tmp_path / f"node{index}"
            data_dir.mkdir()
            nodes.append(
                await stack.enter_async_context(rest_app(_settings(pg_url, moto, data_dir)))
            )
        yield nodes


async def _module(rest: Rest, name: str, *, external_wrap: bool) -> dict[str, Any]:
    module = await rest.ok(
        "POST", "/api/v1/modules", json={"name": name, "external_wrap": external_wrap}
    )
    policy = {"target_type": "role", "target": APP, "operations": ["encrypt", "decrypt"]}
    await rest.ok("POST", f"/api/v1/modules/{name}/policies", json=policy | {"result": "track"})
    return dict(module)


async def _configure(rest: Rest, key_id: str) -> None:
    await rest.ok("PUT", "/api/v1/ekms/config", json={"provider": "aws", "key_id": key_id})
    await _module(rest, EXTERNAL, external_wrap=True)
    await _module(rest, LOCAL, external_wrap=False)


async def _encrypt(rest: Rest, module: str, value: bytes) -> str:
    body = {"module": module, "plaintext": b64(value)}
    return str((await rest.ok("POST", "/api/v1/crypto/encrypt", (APP,), json=body))["ciphertext"])


async def _decrypt(rest: Rest, module: str, ciphertext: str) -> Any:
    body = {"module": module, "ciphertext": ciphertext}
    return await rest.call("POST", "/api/v1/crypto/decrypt", (APP,), json=body)


def _plaintext(response: Any) -> bytes:
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["plaintext"])


async def _sync(rest: Rest) -> ExternalKeyStatus:
    return (await sync_external_key(rest.container.ctx)).status


async def test_disabling_the_aws_key_stops_the_external_module_and_not_the_local_one(
    pg_url: str, aws_env: str, moto_server: str, kms_admin: Any, kms_key: str, tmp_path: Path
) -> None:
    async with _replicas(pg_url, moto_server, tmp_path, 1) as (rest,):
        await _configure(rest, kms_key)
        salary = await _encrypt(rest, EXTERNAL, b"salary 85000")
        sku = await _encrypt(rest, LOCAL, b"sku 42")

        kms_admin.disable_key(KeyId=kms_key)
        assert await _sync(rest) is ExternalKeyStatus.DISABLED

        refused = await _decrypt(rest, EXTERNAL, salary)
        assert refused.status_code == 409 and refused.json()["reason"] == "EXTERNAL_KEY_DISABLED"
        assert _plaintext(await _decrypt(rest, LOCAL, sku)) == b"sku 42"
        fresh = await _encrypt(rest, LOCAL, b"sku 43")
        assert _plaintext(await _decrypt(rest, LOCAL, fresh)) == b"sku 43"
        status = await rest.ok("GET", "/api/v1/ekms/status", (AUDITOR,))
        assert not status["serving"]
        assert {m["name"]: (m["external_wrap"], m["serving"]) for m in status["modules"]} == {
            EXTERNAL: (True, False),
            LOCAL: (False, True),
        }
        assert (await rest.container.readiness()).ready  # the local module needs this replica

        kms_admin.enable_key(KeyId=kms_key)
        assert await _sync(rest) is ExternalKeyStatus.ENABLED
        assert _plaintext(await _decrypt(rest, EXTERNAL, salary)) == b"salary 85000"
        listed = await rest.ok("GET", "/api/v1/modules")
        assert {m["name"]: m["external_wrap"] for m in listed} == {EXTERNAL: True, LOCAL: False}
        await _assert_no_local_secret_in_the_database(rest)


async def _assert_no_local_secret_in_the_database(rest: Rest) -> None:
    """The local KEK and the DEKs under it are stored only wrapped: rebuilt from the root key,
    neither appears in any table, raw, hex or base64."""
    async with rest.container.ctx.uow() as uow:
        row = await uow.local_keks.get()
        keys = await uow.keys.list_all()
    assert row is not None
    root = LocalKms(LOCAL_KEK_REF, base64.b64decode(ROOT_KEY))
    raw_kek = await root.unwrap(row.wrapped_kek, row.encryption_context)
    kek = KeyEncryptionKey(row.id, raw_kek)
    secrets = [raw_kek] + [
        kek.unwrap(k.wrapped_dek, k.module_id, k.version)
        for k in keys
        if k.local_wrap and k.wrapped_dek is not None
    ]
    assert len(secrets) >= 2
    dump = await dump_all_tables(rest.container.engine)
    for secret in secrets:
        for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert form not in dump


async def test_flipping_external_wrap_under_concurrent_decrypts_on_two_replicas_loses_nothing(
    pg_url: str, aws_env: str, moto_server: str, kms_key: str, tmp_path: Path
) -> None:
    async with _replicas(pg_url, moto_server, tmp_path, 2) as (first, second):
        await _configure(first, kms_key)
        await first.ok("POST", f"/api/v1/modules/{EXTERNAL}/keys/rotate", (KEY_MANAGER,))
        values = [f"value {i}".encode() for i in range(12)]
        blobs = [await _encrypt(first, EXTERNAL, v) for v in values]
        failures: list[str] = []
        rounds = [0, 0]
        decrypted = [0, 0]
        flipping = True

        async def read(index: int, node: Rest) -> None:
            while flipping or rounds[index] < 2:
                for value, blob in zip(values, blobs, strict=True):
                    response = await _decrypt(node, EXTERNAL, blob)
                    if response.status_code != 200 or _plaintext(response) != value:
                        failures.append(f"{response.status_code} {response.text}")
                    decrypted[index] += 1
                    await asyncio.sleep(0)  # a warm decrypt does no I/O: let the flips run
                rounds[index] += 1

        async def both_read_some() -> None:
            """Each flip waits until both replicas have decrypted since the last one: the
            decrypts interleave with the flips however slow the host (no timing)."""
            base = list(decrypted)
            for _ in range(6_000):
                if min(d - b for d, b in zip(decrypted, base, strict=True)) >= 3 or failures:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"the readers made no progress: {decrypted}")

        readers = [asyncio.create_task(read(i, n)) for i, n in enumerate((first, second))]
        for target in (False, True, False):
            await both_read_some()
            patched = await first.ok(
                "PATCH", f"/api/v1/modules/{EXTERNAL}", json={"external_wrap": target}
            )
            assert patched["external_wrap"] is target
        await both_read_some()
        flipping = False
        await asyncio.gather(*readers)

        assert failures == []
        for node in (first, second):  # after the flips too, on both replicas
            for value, blob in zip(values, blobs, strict=True):
                assert _plaintext(await _decrypt(node, EXTERNAL, blob)) == value
        keys = await first.ok("GET", f"/api/v1/modules/{EXTERNAL}/keys")
        local = await first.ok("GET", f"/api/v1/modules/{LOCAL}/keys")
        assert {k["kek_id"] for k in keys} == {local[0]["kek_id"]}  # all under the local KEK
        await first.flush_audit()
        audit = await first.ok("GET", "/api/v1/audit", (AUDITOR,), params={"module": EXTERNAL})
        moves = [e for e in audit["items"] if e["action"] == "module.external_wrap"]
        assert [(e["details"]["to"], e["details"]["rewrapped_keys"]) for e in moves] == [
            ("local", 2),
            ("external", 2),
            ("local", 2),
        ]


async def test_flipping_while_the_external_key_is_disabled_is_a_409_that_changes_nothing(
    pg_url: str, aws_env: str, moto_server: str, kms_admin: Any, kms_key: str, tmp_path: Path
) -> None:
    async with _replicas(pg_url, moto_server, tmp_path, 1) as (rest,):
        await _configure(rest, kms_key)
        kms_admin.disable_key(KeyId=kms_key)
        assert await _sync(rest) is ExternalKeyStatus.DISABLED
        before = {
            name: await rest.ok("GET", f"/api/v1/modules/{name}/keys") for name in (EXTERNAL, LOCAL)
        }

        for name, target in ((EXTERNAL, False), (LOCAL, True)):
            response = await rest.call(
                "PATCH", f"/api/v1/modules/{name}", json={"external_wrap": target}
            )
            assert response.status_code == 409, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            problem = response.json()
            assert problem["reason"] == "EXTERNAL_KEY_DISABLED"
            assert "external_wrap cannot change" in problem["detail"]

        after = {
            name: await rest.ok("GET", f"/api/v1/modules/{name}/keys") for name in (EXTERNAL, LOCAL)
        }
        assert after == before
        listed = await rest.ok("GET", "/api/v1/modules")
        assert {m["name"]: m["external_wrap"] for m in listed} == {EXTERNAL: True, LOCAL: False}
        await rest.flush_audit()
        audit = await rest.ok(
            "GET", "/api/v1/audit", (AUDITOR,), params={"action": "module.update"}
        )
        assert audit["items"] == []


async def test_without_a_local_root_key_external_wrap_false_is_a_422(
    pg_url: str, aws_env: str, moto_server: str, kms_key: str, tmp_path: Path
) -> None:
    settings = _settings(pg_url, moto_server, tmp_path, local_root_key=None)
    async with rest_app(settings) as rest:
        await rest.ok("PUT", "/api/v1/ekms/config", json={"provider": "aws", "key_id": kms_key})
        response = await rest.call(
            "POST", "/api/v1/modules", json={"name": LOCAL, "external_wrap": False}
        )
        assert response.status_code == 422, response.text
        problem = response.json()
        assert "EKMS_LOCAL_ROOT_KEY" in problem["detail"]
        assert [e["field"] for e in problem.get("errors", [])] in (["external_wrap"], [])
        assert await rest.ok("GET", "/api/v1/modules") == []


async def test_a_move_asked_again_changes_nothing(
    pg_url: str, aws_env: str, moto_server: str, kms_key: str, tmp_path: Path
) -> None:
    async with _replicas(pg_url, moto_server, tmp_path, 1) as (rest,):
        await _configure(rest, kms_key)
        path = f"/api/v1/modules/{EXTERNAL}"
        await rest.ok("PATCH", path, json={"external_wrap": False})
        keys = await rest.ok("GET", f"{path}/keys")
        await rest.ok("PATCH", path, json={"external_wrap": False})  # a retry after a timeout
        assert await rest.ok("GET", f"{path}/keys") == keys
        await rest.flush_audit()
        moves = await rest.ok(
            "GET", "/api/v1/audit", (AUDITOR,), params={"action": "module.external_wrap"}
        )
        assert len(moves["items"]) == 1
