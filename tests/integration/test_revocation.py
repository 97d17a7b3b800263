"""Revocation and the root of trust against real servers (issue 10, findings 1 and 3):
Postgres, moto's KMS server, and a KMS stand-in of the tests' own (``tests/fixtures/kms_gate``)
that answers AccessDeniedException over HTTP the way a key policy denial does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.application.configuration import get_status
from app.application.crypto import Item
from app.application.sync import sync_external_key
from app.application.targets import Target
from app.bootstrap import Container, running
from app.domain.errors import KeyUnavailable, Reason
from app.domain.values import (
    ExternalKeyStatus,
    KmsProvider,
)
from app.infra.settings import Settings
from tests.chain_support import APP, open_module
from tests.fixtures.kms_gate import KmsGate

TARGET = Target(module="global.revoke")


def _settings(pg_url: str, url: str, region: str, tmp_path: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "database_url": pg_url,
        "kms_provider": "aws",
        "aws_endpoint_url": url,
        "allow_insecure_kms_endpoint": True,
        "aws_region": region,
        "data_dir": tmp_path,
        "jwt_hs256_secret": "z" * 40,
        "scheduler_enabled": False,
        "unavailable_grace_minutes": 15,  # a refusal must not wait for it
        "metrics_port": None,
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


async def _prepare(container: Container, key_id: str) -> bytes:
    await open_module(container.ctx, KmsProvider.AWS, key_id, "global.revoke")
    blob = (await container.crypto.encrypt(APP, Item(TARGET, b"payroll"))).data
    assert blob is not None
    return blob


@pytest.fixture
async def gated(
    pg_url: str, aws_env: str, kms_gate: KmsGate, kms_key: str, tmp_path: Path
) -> AsyncIterator[tuple[Container, bytes]]:
    async with running(_settings(pg_url, kms_gate.url, aws_env, tmp_path)) as container:
        yield container, await _prepare(container, kms_key)


async def _refused(container: Container, blob: bytes) -> Reason:
    with pytest.raises(KeyUnavailable) as err:
        await container.crypto.decrypt(APP, Item(TARGET, blob))
    return err.value.reason


async def test_decrypt_revoked_while_describe_works_stops_the_chain_at_the_next_sync(
    gated: tuple[Container, bytes], kms_gate: KmsGate
) -> None:
    container, blob = gated
    kms_gate.deny("Decrypt")  # the customer's key policy now denies kms:Decrypt only

    report = await sync_external_key(container.ctx)

    assert report.status is ExternalKeyStatus.UNAVAILABLE
    assert "DescribeKey" in kms_gate.seen and kms_gate.seen[-1] != "DescribeKey"
    status = await get_status(container.ctx)
    assert status.status_reason_code == Reason.EXTERNAL_KEY_ACCESS_DENIED.value
    assert not status.serving and status.open_alerts
    # At once: the 15-minute grace period of a silent KMS does not apply to a refusal.
    assert await _refused(container, blob) is Reason.EXTERNAL_KEY_ACCESS_DENIED
    assert not (await container.readiness()).ready

    kms_gate.allow_all()  # access restored
    assert (await sync_external_key(container.ctx)).status is ExternalKeyStatus.ENABLED
    assert (await container.crypto.decrypt(APP, Item(TARGET, blob))).data == b"payroll"
    assert (await get_status(container.ctx)).open_alerts == ()


async def test_describe_denied_fails_closed_at_once(
    gated: tuple[Container, bytes], kms_gate: KmsGate
) -> None:
    container, blob = gated
    kms_gate.deny("DescribeKey")
    report = await sync_external_key(container.ctx)
    assert report.status is ExternalKeyStatus.UNAVAILABLE
    assert await _refused(container, blob) is Reason.EXTERNAL_KEY_ACCESS_DENIED


async def test_the_revocation_probe_bites_within_its_period_without_a_sync(
    pg_url: str, aws_env: str, kms_gate: KmsGate, kms_key: str, tmp_path: Path
) -> None:
    settings = _settings(
        pg_url,
        kms_gate.url,
        aws_env,
        tmp_path,
        scheduler_enabled=True,
        scheduler_tick_seconds=3600,  # the sync itself will not run again during the test
        revocation_probe_seconds=5,
    )
    async with running(settings) as container:
        blob = await _prepare(container, kms_key)
        kms_gate.deny("Decrypt")
        for _ in range(300):  # bounded: the probe runs every 5 s
            if not (await get_status(container.ctx)).serving:
                break
            await asyncio.sleep(0.1)
        assert container.scheduler.probes >= 1
        assert await _refused(container, blob) is Reason.EXTERNAL_KEY_ACCESS_DENIED
        assert kms_gate.seen.count("DescribeKey") <= 3, "the probe is a Decrypt, not a sync"


async def test_an_endpoint_named_in_a_request_never_receives_the_kek(
    pg_url: str, aws_env: str, moto_server: str, kms_capture: KmsGate, kms_key: str, tmp_path: Path
) -> None:
    from tests.e2e.rest_support import SECRET, rest_app

    settings = _settings(pg_url, moto_server, aws_env, tmp_path, jwt_hs256_secret=SECRET)
    async with rest_app(settings) as env:
        body = {"provider": "aws", "key_id": kms_key, "endpoint_url": kms_capture.url}
        refused = await env.call("PUT", "/api/v1/ekms/config", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "server setting" in refused.text
        assert (await env.call("GET", "/api/v1/ekms/config")).status_code == 404  # no write
        assert kms_capture.seen == [], "nothing may reach an endpoint a request named"

        body.pop("endpoint_url")
        assert (await env.call("PUT", "/api/v1/ekms/config", json=body)).status_code == 201
        status = (await env.call("GET", "/api/v1/ekms/status", roles=("ekms.auditor",))).json()
        assert status["external_key"]["kms_endpoint"] == moto_server
        config = (await env.call("GET", "/api/v1/ekms/config")).json()
        assert config["kms_endpoint"] == moto_server and "endpoint_url" not in config
        repoint = await env.call(
            "PUT", "/api/v1/ekms/config", json={**body, "endpoint_url": kms_capture.url}
        )
        assert repoint.status_code == 422 and kms_capture.seen == []


@pytest.mark.parametrize("url", ["http://kms.example:443", "ftp://kms.example", "https://a b"])
def test_a_plain_http_or_odd_kms_endpoint_is_refused_at_start(url: str) -> None:
    with pytest.raises(ValidationError) as err:
        Settings(aws_endpoint_url=url)
    assert "EKMS_AWS_ENDPOINT_URL" in str(err.value)
    assert Settings(aws_endpoint_url="https://kms.eu-west-1.amazonaws.com").aws_endpoint_url
    assert Settings(aws_endpoint_url="http://127.0.0.1:5000", allow_insecure_kms_endpoint=True)
