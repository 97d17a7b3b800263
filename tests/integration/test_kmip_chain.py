"""The whole key chain rooted in a key on PyKMIP's real server through the provider registry:
configure, test, round trip, states reached by acting on the server itself, a ReKey rewrapping
the EKEK, restart and decrypt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.application.config_probe import probe_ekms_config
from app.application.configuration import (
    get_status,
)
from app.application.crypto import Item
from app.application.sync import sync_external_key
from app.application.targets import Target
from app.bootstrap import running
from app.domain.errors import KeyUnavailable, Reason
from app.domain.values import (
    ExternalKeyStatus,
    KmsProvider,
)
from app.infra.settings import Settings
from tests.chain_support import ADMIN, APP, node_settings, open_module
from tests.fixtures.kmip import KmipAdmin, KmipServer

TARGET = Target(module="global.kmip")


def _settings(pg_url: str, server: KmipServer, tmp_path: Path) -> Settings:
    return node_settings(
        pg_url,
        tmp_path,
        secret="z" * 40,
        kms_provider="kmip",
        kmip_host=server.host,
        kmip_port=server.port,
        kmip_cert_file=server.pki.client_cert,
        kmip_key_file=server.pki.client_key,
        kmip_ca_file=server.pki.ca,
    )


async def _refused(node: Any, blob: bytes) -> Reason:
    with pytest.raises(KeyUnavailable) as err:
        await node.crypto.decrypt(APP, Item(TARGET, blob))
    return err.value.reason


async def test_a_chain_rooted_in_a_kmip_key_serves_rekeys_fails_closed_and_restarts(
    pg_url: str, kmip_server: KmipServer, kmip_admin: KmipAdmin, kmip_key: str, tmp_path: Path
) -> None:
    settings = _settings(pg_url, kmip_server, tmp_path)
    async with running(settings) as node:
        await open_module(node.ctx, KmsProvider.KMIP, kmip_key, "global.kmip")
        probe = await probe_ekms_config(node.ctx, ADMIN)
        assert probe.ok, probe.reason
        print(f"kmip config test (wrap + unwrap through PyKMIP): {probe.latency_ms:.1f} ms")
        blob = (await node.crypto.encrypt(APP, Item(TARGET, b"salary"))).data
        assert blob is not None
        status = await get_status(node.ctx)
        assert status.kms_endpoint == f"kmip://{kmip_server.host}:{kmip_server.port}"

        kmip_admin.rekey(kmip_key)  # the key owner rotates the key on the server
        report = await sync_external_key(node.ctx)
        assert report.status is ExternalKeyStatus.ENABLED and report.rewrapped, report
        assert (await node.crypto.decrypt(APP, Item(TARGET, blob))).data == b"salary"

    async with running(settings) as node:  # a restart unwraps the KEK under the new key
        assert (await node.crypto.decrypt(APP, Item(TARGET, blob))).data == b"salary"
        current = (await get_status(node.ctx)).ekek_rotation_marker or ""
        current_uid = current.rsplit(":", 1)[-1]
        kmip_admin.revoke(current_uid)  # Deactivated: the customer disables the key
        assert (await sync_external_key(node.ctx)).status is ExternalKeyStatus.DISABLED
        assert await _refused(node, blob) is Reason.EXTERNAL_KEY_DISABLED
