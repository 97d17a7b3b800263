"""TLS and mutual TLS on the gRPC listener, with certificates made for the test."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from ekms_client import AsyncEkmsClient, EkmsRpcError, Target
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc

from app.grpc.server import TlsFiles
from tests.e2e.conftest import Ekms, mint, module_target
from tests.e2e.pki import Issued, Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


async def _encrypt(address: str, credentials: grpc.ChannelCredentials | None) -> int:
    channel = (
        grpc.aio.secure_channel(address, credentials)
        if credentials is not None
        else grpc.aio.insecure_channel(address)
    )
    async with channel:
        response = await pb_grpc.CryptoStub(channel).Encrypt(
            pb.EncryptRequest(target=module_target(), plaintext=b"x"),
            metadata=(("authorization", f"Bearer {mint('billing-svc', 'billing')}"),),
            timeout=5,
        )
    return int(response.key_version)


class TestTls:
    @pytest.fixture
    def e2e_options(self, pki: Pki) -> dict[str, object]:
        return {"tls": TlsFiles(pki.files.cert_file, pki.files.key_file)}

    async def test_tls_serves_verified_clients_and_refuses_plaintext(
        self, ekms: Ekms, pki: Pki
    ) -> None:
        trusted = grpc.ssl_channel_credentials(root_certificates=pki.ca_pem)
        assert await _encrypt(ekms.address, trusted) == 1
        with pytest.raises(grpc.aio.AioRpcError) as plaintext:
            await _encrypt(ekms.address, None)
        assert plaintext.value.code() is grpc.StatusCode.UNAVAILABLE
        async with AsyncEkmsClient(
            ekms.address, token=mint("billing-svc", "billing"), credentials=trusted
        ) as client:
            sealed = await client.encrypt(Target.for_module("global.billing"), b"over tls")
            opened = await client.decrypt(Target.for_module("global.billing"), sealed.ciphertext)
            assert opened.plaintext == b"over tls"


class TestMutualTls:
    @pytest.fixture
    def e2e_options(self, pki: Pki) -> dict[str, object]:
        return {"tls": pki.files}

    async def test_only_clients_with_a_certificate_from_the_client_ca_get_in(
        self, ekms: Ekms, pki: Pki
    ) -> None:
        def creds(client: Issued | None) -> grpc.ChannelCredentials:
            return grpc.ssl_channel_credentials(
                root_certificates=pki.ca_pem,
                private_key=client.key_pem if client else None,
                certificate_chain=client.cert_pem if client else None,
            )

        assert await _encrypt(ekms.address, creds(pki.client)) == 1
        for refused in (None, pki.stranger):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _encrypt(ekms.address, creds(refused))
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        async with AsyncEkmsClient(
            ekms.address, token=mint("billing-svc", "billing"), credentials=creds(None)
        ) as client:
            with pytest.raises(EkmsRpcError) as err:
                await client.encrypt(Target.for_module("global.billing"), b"x")
            assert err.value.code is grpc.StatusCode.UNAVAILABLE
