"""Rotating the local KEK (``POST /ekms/local-kek/rotate``) against real parts: Postgres,
moto's KMS server, the REST app, two replicas on one database."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from app.application.local_kek import LOCAL_KEK_REF
from app.domain.keys import KeyEncryptionKey
from app.domain.values import ExternalKeyStatus
from app.infra.kms.local import LocalKms
from tests.e2e.rest_support import AUDITOR, KEY_MANAGER, Rest, rest_app
from tests.e2e.test_module_wrap_real import (
    EXTERNAL,
    LOCAL,
    ROOT_KEY,
    _configure,
    _decrypt,
    _encrypt,
    _plaintext,
    _replicas,
    _settings,
    _sync,
)
from tests.fixtures.db import dump_all_tables

ROTATE = "/api/v1/ekms/local-kek/rotate"


async def _local_row(rest: Rest) -> Any:
    async with rest.container.ctx.uow() as uow:
        return await uow.local_keks.get()


async def test_a_rotation_under_concurrent_decrypts_and_key_rotations_loses_nothing(
    pg_url: str, aws_env: str, moto_server: str, kms_key: str, tmp_path: Path
) -> None:
    async with _replicas(pg_url, moto_server, tmp_path, 2) as (first, second):
        await _configure(first, kms_key)
        values = [f"sku {i}".encode() for i in range(8)]
        blobs = [await _encrypt(first, LOCAL, v) for v in values]
        await first.ok("POST", f"/api/v1/modules/{LOCAL}/keys/rotate", (KEY_MANAGER,))
        blobs.append(await _encrypt(first, LOCAL, b"sku v2"))
        values.append(b"sku v2")
        external_before = await first.ok("GET", f"/api/v1/modules/{EXTERNAL}/keys")
        old = await _local_row(first)
        old_raw = await LocalKms(LOCAL_KEK_REF, base64.b64decode(ROOT_KEY)).unwrap(
            old.wrapped_kek, old.encryption_context
        )
        failures: list[str] = []
        rotating = True
        rounds = [0, 0]

        async def read(index: int, node: Rest) -> None:
            while rotating or rounds[index] < 2:
                for value, blob in zip(values, blobs, strict=True):
                    response = await _decrypt(node, LOCAL, blob)
                    if response.status_code != 200 or _plaintext(response) != value:
                        failures.append(f"{response.status_code} {response.text}")
                    await asyncio.sleep(0)
                rounds[index] += 1

        async def rotate_module_keys() -> int:
            done = 0
            while rotating:  # new DEKs under the local KEK, on the other replica
                response = await second.call(
                    "POST", f"/api/v1/modules/{LOCAL}/keys/rotate", (KEY_MANAGER,)
                )
                if response.status_code == 201:
                    done += 1
                else:  # only ever "the KEK changed meanwhile", never a DEK left behind
                    assert response.status_code == 409, response.text
                    assert response.json()["reason"] == "CONCURRENT_UPDATE", response.text
                await asyncio.sleep(0.01)
            return done

        readers = [asyncio.create_task(read(i, n)) for i, n in enumerate((first, second))]
        rotator = asyncio.create_task(rotate_module_keys())
        answers = []
        for _ in range(3):
            await asyncio.sleep(0.05)
            answers.append(await first.ok("POST", ROTATE, (KEY_MANAGER,)))
        rotating = False
        await asyncio.gather(*readers)
        assert await rotator >= 1, "module keys rotated while the local KEK did"

        assert failures == []
        assert [a["old_kek_id"] for a in answers[1:]] == [a["new_kek_id"] for a in answers[:-1]]
        assert answers[0]["old_kek_id"] == str(old.id)
        assert all(a["rewrapped_keys"] >= 2 for a in answers)
        new = await _local_row(first)
        assert str(new.id) == answers[-1]["new_kek_id"]
        for node in (first, second):  # the other replica follows the new local KEK
            for value, blob in zip(values, blobs, strict=True):
                assert _plaintext(await _decrypt(node, LOCAL, blob)) == value
        keys = await first.ok("GET", f"/api/v1/modules/{LOCAL}/keys")
        assert {k["kek_id"] for k in keys if k["state"] != "destroyed"} == {str(new.id)}
        new_kek = KeyEncryptionKey(
            new.id,
            await LocalKms(LOCAL_KEK_REF, base64.b64decode(ROOT_KEY)).unwrap(
                new.wrapped_kek, new.encryption_context
            ),
        )
        async with first.container.ctx.uow() as uow:
            stored = [k for k in await uow.keys.list_all() if k.local_wrap]
        assert len(stored) == len(keys) >= 3
        for key in stored:  # every version under the new local KEK, none left behind
            assert key.kek_id == new.id and key.wrapped_dek is not None
            new_kek.unwrap(key.wrapped_dek, key.module_id, key.version)
        fresh = await _encrypt(second, LOCAL, b"after")
        assert _plaintext(await _decrypt(first, LOCAL, fresh)) == b"after"
        # the external module's keys did not move
        assert await first.ok("GET", f"/api/v1/modules/{EXTERNAL}/keys") == external_before
        # the old local KEK is gone from the database, in every encoding
        dump = await dump_all_tables(first.container.engine)
        for form in (old_raw, old_raw.hex().encode(), base64.b64encode(old_raw), old.wrapped_kek):
            assert form not in dump
        await first.flush_audit()
        audit = await first.ok(
            "GET", "/api/v1/audit", (AUDITOR,), params={"action": "local_kek.rotate"}
        )
        assert sorted(e["details"]["new_kek_id"] for e in audit["items"]) == sorted(
            a["new_kek_id"] for a in answers
        )


async def test_the_local_kek_rotates_while_the_external_key_is_disabled(
    pg_url: str, aws_env: str, moto_server: str, kms_admin: Any, kms_key: str, tmp_path: Path
) -> None:
    async with _replicas(pg_url, moto_server, tmp_path, 1) as (rest,):
        await _configure(rest, kms_key)
        sku = await _encrypt(rest, LOCAL, b"sku 42")
        kms_admin.disable_key(KeyId=kms_key)
        assert await _sync(rest) is ExternalKeyStatus.DISABLED
        rotated = await rest.ok("POST", ROTATE, (KEY_MANAGER,))
        assert rotated["rewrapped_keys"] == 1
        assert _plaintext(await _decrypt(rest, LOCAL, sku)) == b"sku 42"


async def test_without_a_local_kek_a_rotation_is_a_409_and_writes_nothing(
    pg_url: str, aws_env: str, moto_server: str, kms_key: str, tmp_path: Path
) -> None:
    async with rest_app(_settings(pg_url, moto_server, tmp_path)) as rest:
        await rest.ok("PUT", "/api/v1/ekms/config", json={"provider": "aws", "key_id": kms_key})
        response = await rest.call("POST", ROTATE, (KEY_MANAGER,))
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["reason"] == "LOCAL_KEK_UNAVAILABLE"
        assert await _local_row(rest) is None
