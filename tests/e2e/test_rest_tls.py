"""REST over TLS and mutual TLS (finding 10: "REST has no TLS option"), and HSTS only where
TLS is: ``ekms serve`` on real sockets with certificates made for the test."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest

from app import healthcheck
from tests.e2e.pki import Pki, make_pki
from tests.e2e.serving import embedded_settings, serving

HSTS = "strict-transport-security"


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


async def _livez(url: str, verify: ssl.SSLContext | bool = True) -> httpx.Response:
    async with httpx.AsyncClient(verify=verify, timeout=10) as client:
        return await client.get(url + "/livez")


async def test_tls_serves_verified_clients_sends_hsts_and_refuses_plaintext(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = embedded_settings(
        tmp_path / "data",
        http_tls_cert_file=pki.files.cert_file,
        http_tls_key_file=pki.files.key_file,
    )
    async with serving(settings):
        port = settings.http_port
        response = await _livez(f"https://127.0.0.1:{port}", _trusting(pki))
        assert response.status_code == 200
        assert response.headers[HSTS] == "max-age=63072000; includeSubDomains"
        # Plain HTTP to the TLS port gets no answer at all.
        with pytest.raises(httpx.TransportError):
            await _livez(f"http://127.0.0.1:{port}")
        # A client that does not trust the CA refuses the server.
        with pytest.raises(httpx.ConnectError):
            await _livez(f"https://127.0.0.1:{port}")
        # The container's HEALTHCHECK follows the settings to https.
        monkeypatch.setenv("EKMS_HTTP_PORT", str(port))
        monkeypatch.setenv("EKMS_HTTP_TLS_CERT_FILE", str(pki.files.cert_file))
        assert await asyncio.to_thread(healthcheck.main) == 0
        monkeypatch.delenv("EKMS_HTTP_TLS_CERT_FILE")
        assert await asyncio.to_thread(healthcheck.main) == 1, "plain http to a TLS port"


async def test_mutual_tls_admits_only_client_certificates_from_the_client_ca(
    tmp_path: Path, pki: Pki
) -> None:
    settings = embedded_settings(
        tmp_path / "data",
        http_tls_cert_file=pki.files.cert_file,
        http_tls_key_file=pki.files.key_file,
        http_tls_client_ca_file=pki.files.client_ca_file,
    )
    async with serving(settings):
        url = f"https://127.0.0.1:{settings.http_port}"
        assert (await _livez(url, _trusting(pki, "client"))).status_code == 200
        for refused in (None, "stranger"):
            with pytest.raises(httpx.TransportError):
                await _livez(url, _trusting(pki, refused))


async def test_plain_http_sends_no_hsts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = embedded_settings(tmp_path / "data")
    async with serving(settings):
        response = await _livez(f"http://127.0.0.1:{settings.http_port}")
        assert response.status_code == 200
        assert HSTS not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
        monkeypatch.setenv("EKMS_HTTP_PORT", str(settings.http_port))
        monkeypatch.delenv("EKMS_HTTP_TLS_CERT_FILE", raising=False)
        assert await asyncio.to_thread(healthcheck.main) == 0
