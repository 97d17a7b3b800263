"""The XKS proxy listener over TLS and mutual TLS (``EKMS_XKS_TLS_*``), as AWS KMS reaches it:
``ekms serve`` on real sockets with certificates made for the test, a SigV4-signed health
call on top; off unless ``EKMS_XKS_PORT`` is set; half a TLS setting refuses to start."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from app.bootstrap import StartupError
from tests.e2e.pki import Pki, make_pki
from tests.e2e.rest_support import ADMIN, SECRET, auth
from tests.e2e.serving import embedded_settings, free_port, serving
from tests.e2e.xks_support import XksClient


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    (tmp_path / "pki").mkdir()
    return make_pki(tmp_path / "pki")


def _trusting(pki: Pki, client: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=pki.ca_pem.decode())
    if client is not None:
        folder = pki.files.cert_file.parent
        context.load_cert_chain(folder / f"{client}.crt", folder / f"{client}.key")
    return context


async def test_mutual_tls_admits_only_client_certificates_from_the_client_ca(
    tmp_path: Path, pki: Pki
) -> None:
    settings = embedded_settings(
        tmp_path / "data",
        xks_port=free_port(),
        xks_tls_cert_file=pki.files.cert_file,
        xks_tls_key_file=pki.files.key_file,
        xks_tls_client_ca_file=pki.files.client_ca_file,
        jwt_hs256_secret=SECRET,
    )
    async with serving(settings):
        url = f"https://127.0.0.1:{settings.xks_port}"
        async with httpx.AsyncClient(verify=_trusting(pki, "client"), timeout=10) as http:
            assert (await http.get(url + "/livez")).status_code == 200
            rest = f"http://127.0.0.1:{settings.http_port}/api/v1/xks/stores"
            async with httpx.AsyncClient(timeout=10) as plain:
                created = await plain.post(
                    rest,
                    headers=auth(ADMIN),
                    json={"name": "tls", "region": "eu-west-1"},
                )
            assert created.status_code == 201, created.text
            issued = created.json()["issued_credential"]
            xks = XksClient(
                url + "/kms/xks/v1",
                issued["AccessKeyId"],
                issued["RawSecretAccessKey"],
                "eu-west-1",
                http,
            )
            body = {"requestMetadata": {"kmsRequestId": "r", "kmsOperation": "KmsHealthCheck"}}
            assert (await xks.call("/health", body)).status_code == 200
        for refused in (None, "stranger"):
            async with httpx.AsyncClient(verify=_trusting(pki, refused), timeout=10) as other:
                with pytest.raises(httpx.TransportError):
                    await other.get(url + "/livez")


async def test_the_listener_is_off_by_default_and_half_tls_refuses_to_start(
    tmp_path: Path, pki: Pki
) -> None:
    assert embedded_settings(tmp_path / "a").xks_port is None
    settings = embedded_settings(
        tmp_path / "b", xks_port=free_port(), xks_tls_cert_file=pki.files.cert_file
    )
    with pytest.raises(StartupError, match="EKMS_XKS_TLS"):
        async with serving(settings):
            pass


@pytest.mark.parametrize(("subject", "admitted"), [("billing-svc", True), ("cks.kms.x", False)])
async def test_the_client_subject_is_checked_when_set(
    tmp_path: Path, pki: Pki, subject: str, admitted: bool
) -> None:
    settings = embedded_settings(
        tmp_path / "data",
        xks_port=free_port(),
        xks_tls_cert_file=pki.files.cert_file,
        xks_tls_key_file=pki.files.key_file,
        xks_tls_client_ca_file=pki.files.client_ca_file,
        xks_tls_client_subject=subject,
    )
    async with serving(settings):
        url = f"https://127.0.0.1:{settings.xks_port}/livez"
        async with httpx.AsyncClient(verify=_trusting(pki, "client"), timeout=10) as http:
            if admitted:
                assert (await http.get(url)).status_code == 200
            else:  # the right CA, another subject: cut off after the handshake
                with pytest.raises(httpx.TransportError):
                    await http.get(url)


def test_a_subject_needs_a_client_ca(tmp_path: Path, pki: Pki) -> None:
    from app.listeners import xks_config

    settings = embedded_settings(
        tmp_path,
        xks_port=free_port(),
        xks_tls_cert_file=pki.files.cert_file,
        xks_tls_key_file=pki.files.key_file,
        xks_tls_client_subject="cks.kms.eu-west-1.amazonaws.com",
    )
    with pytest.raises(StartupError, match="CLIENT_CA"):
        xks_config(None, settings)  # type: ignore[arg-type]
