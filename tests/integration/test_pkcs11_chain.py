"""The whole key chain rooted in a real SoftHSM2 token through the provider registry: configure,
test, round trip, states reached by acting on the HSM itself, restart and decrypt."""

from __future__ import annotations

from pathlib import Path

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
from tests.fixtures.pkcs11 import HsmAdmin, SoftHsmToken

TARGET = Target(module="global.hsm")


def _settings(pg_url: str, token: SoftHsmToken, tmp_path: Path) -> Settings:
    return node_settings(
        pg_url,
        tmp_path,
        secret="z" * 40,
        kms_provider="pkcs11",
        pkcs11_library=token.library,
        pkcs11_token_label=token.label,
        pkcs11_pin=token.pin,
    )


async def test_a_chain_rooted_in_an_hsm_serves_fails_closed_and_survives_a_restart(
    pg_url: str, pkcs11_token: SoftHsmToken, pkcs11_key: str, hsm_admin: HsmAdmin, tmp_path: Path
) -> None:
    settings = _settings(pg_url, pkcs11_token, tmp_path)
    async with running(settings) as node:
        await open_module(node.ctx, KmsProvider.PKCS11, pkcs11_key, "global.hsm")
        probe = await probe_ekms_config(node.ctx, ADMIN)
        assert probe.ok, probe.reason
        print(f"pkcs11 config test (wrap + unwrap through SoftHSM2): {probe.latency_ms:.1f} ms")
        blob = (await node.crypto.encrypt(APP, Item(TARGET, b"salary"))).data
        assert blob is not None
        status = await get_status(node.ctx)
        assert status.kms_endpoint and pkcs11_token.label in status.kms_endpoint

        hsm_admin.set(pkcs11_key, encrypt=False, decrypt=False)  # the HSM officer disables it
        assert (await sync_external_key(node.ctx)).status is ExternalKeyStatus.DISABLED
        try:
            await node.crypto.decrypt(APP, Item(TARGET, blob))
        except KeyUnavailable as err:
            assert err.reason is Reason.EXTERNAL_KEY_DISABLED
        else:
            raise AssertionError("a disabled HSM key must stop the chain")

        hsm_admin.set(pkcs11_key, encrypt=True, decrypt=True)
        assert (await sync_external_key(node.ctx)).status is ExternalKeyStatus.ENABLED
        assert (await node.crypto.decrypt(APP, Item(TARGET, blob))).data == b"salary"

    async with running(settings) as node:  # a restart unwraps the KEK through the HSM again
        assert (await node.crypto.decrypt(APP, Item(TARGET, blob))).data == b"salary"
        hsm_admin.destroy(pkcs11_key)
        assert (await sync_external_key(node.ctx)).status is ExternalKeyStatus.DELETED
