"""A throwaway PKI for the TLS tests: a CA, a server certificate for ``localhost`` and
``127.0.0.1``, a client certificate from the same CA and one from a CA nobody trusts.

``make_pki(directory)`` writes ``server.crt``, ``server.key``, ``clients-ca.crt`` (the CA that
signs both the server and the trusted client), ``client.crt``/``client.key`` and
``stranger.crt``/``stranger.key`` there.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.grpc.server import TlsFiles


@dataclass
class Issued:
    key_pem: bytes
    cert_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(
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


def pem(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> Issued:
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


def make_pki(tmp_path: Path) -> Pki:
    ca_key, ca_cert = issue("ekms test CA", None, server=False)
    other_key, other_cert = issue("some other CA", None, server=False)
    server = pem(*issue("localhost", (ca_key, ca_cert.subject), server=True))
    client = pem(*issue("billing-svc", (ca_key, ca_cert.subject), server=False))
    stranger = pem(*issue("stranger", (other_key, other_cert.subject), server=False))
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    written = {
        "server.key": server.key_pem,
        "server.crt": server.cert_pem,
        "client.key": client.key_pem,
        "client.crt": client.cert_pem,
        "stranger.key": stranger.key_pem,
        "stranger.crt": stranger.cert_pem,
    }
    for name, data in written.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "clients-ca.crt").write_bytes(ca_pem)
    files = TlsFiles(tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "clients-ca.crt")
    return Pki(ca_pem, server, client, stranger, files)
