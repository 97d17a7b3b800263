"""TLS and mutual TLS on the gRPC listener, with certificates made for the test."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.client import AsyncEkmsClient, EkmsRpcError, Target
from app.grpc.gen.ekms.v1 import crypto_pb2 as pb
from app.grpc.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc
from app.grpc.server import TlsFiles
from tests.e2e.conftest import Ekms, mint, module_target


@dataclass
class Issued:
    key_pem: bytes
    cert_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Name] | None, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    signer, issuer_name = issuer or (key, _name(subject))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return key, builder.sign(signer, hashes.SHA256())


def _pem(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> Issued:
    return Issued(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )


@dataclass
class Pki:
    ca_pem: bytes
    server: Issued
    client: Issued
    stranger: Issued  # a client certificate from a CA the server does not trust
    files: TlsFiles


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_key, ca_cert = _issue("ekms test CA", None, server=False)
    other_key, other_cert = _issue("some other CA", None, server=False)
    server = _pem(*_issue("localhost", (ca_key, ca_cert.subject), server=True))
    client = _pem(*_issue("billing-svc", (ca_key, ca_cert.subject), server=False))
    stranger = _pem(*_issue("stranger", (other_key, other_cert.subject), server=False))
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    for name, data in {"server.key": server.key_pem, "server.crt": server.cert_pem}.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "clients-ca.crt").write_bytes(ca_pem)
    files = TlsFiles(tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "clients-ca.crt")
    return Pki(ca_pem, server, client, stranger, files)


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
