"""Finding 10 (plaintext by default): the refusals ``ekms serve`` makes before it listens.

- a container started without ``EKMS_DATABASE_URL`` ran on 0.0.0.0 with an auto-generated dev
  secret: ``serve`` now refuses any non-loopback REST or gRPC bind while tokens are checked
  against that secret, and says which ``EKMS_JWT_*`` to set;
- REST TLS settings that cannot work (a certificate without its key, a client CA without a
  certificate, a file that does not load) stop the start instead of serving plaintext.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from app.bootstrap import StartupError, refuse_public_bind_with_dev_secret, uses_dev_secret
from app.cli import cli
from app.infra.settings import Settings
from app.listeners import http_config, metrics_config
from app.server import serve

SECRET = "a-configured-hs256-secret-0123456789abcdef"
DOCKERFILE = Path(__file__).parents[2] / "Dockerfile"


@pytest.fixture(autouse=True)
def no_ekms_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("EKMS_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("variable", "host"),
    [
        ("EKMS_HTTP_HOST", "0.0.0.0"),  # noqa: S104 - the bind under test
        ("EKMS_GRPC_HOST", "0.0.0.0"),  # noqa: S104
        ("EKMS_HTTP_HOST", "::"),
        ("EKMS_GRPC_HOST", "10.1.2.3"),
        ("EKMS_HTTP_HOST", "ekms.internal"),
    ],
)
def test_a_public_bind_with_the_dev_secret_is_refused(
    tmp_path: Path, variable: str, host: str
) -> None:
    field = variable.removeprefix("EKMS_").lower()
    settings = Settings(data_dir=tmp_path, **{field: host})  # type: ignore[arg-type]
    assert uses_dev_secret(settings)
    with pytest.raises(StartupError) as err:
        refuse_public_bind_with_dev_secret(settings)
    message = str(err.value)
    assert f"{variable}={host}" in message
    assert "EKMS_JWT_JWKS_URL" in message and "EKMS_JWT_HS256_SECRET" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "::1", "[::1]"])
def test_loopback_binds_keep_the_zero_configuration_default(tmp_path: Path, host: str) -> None:
    refuse_public_bind_with_dev_secret(Settings(data_dir=tmp_path, http_host=host, grpc_host=host))


@pytest.mark.parametrize(
    "configured",
    [
        {"jwt_hs256_secret": SECRET},
        {"jwt_jwks_url": "https://idp.example/.well-known/jwks.json"},
        {"jwt_public_key_file": "/etc/ekms/jwt.pem"},
        {"database_url": "postgresql://ekms@db/ekms"},  # not embedded: no dev secret at all
    ],
)
def test_a_real_token_source_allows_a_public_bind(tmp_path: Path, configured: dict) -> None:
    settings = Settings(data_dir=tmp_path, http_host="0.0.0.0", grpc_host="0.0.0.0", **configured)  # noqa: S104
    assert not uses_dev_secret(settings)
    refuse_public_bind_with_dev_secret(settings)


async def test_serve_refuses_before_it_creates_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with pytest.raises(StartupError, match="EKMS_JWT_"):
        await serve(Settings(data_dir=data, http_host="0.0.0.0"))  # noqa: S104
    assert not data.exists(), "no database, root key or dev secret was written"


def test_the_bare_container_image_refuses_to_start_and_says_what_to_set(tmp_path: Path) -> None:
    # The image's own EKMS_* environment (its ENV lines), no database URL, no token source.
    image_env = dict(re.findall(r"\b(EKMS_[A-Z_]+)=(\S+)", DOCKERFILE.read_text()))
    assert image_env["EKMS_HTTP_HOST"] == image_env["EKMS_GRPC_HOST"] == "0.0.0.0"  # noqa: S104
    result = CliRunner().invoke(cli, ["serve"], env={**image_env, "EKMS_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "auto-generated development JWT secret" in result.stderr
    assert "EKMS_JWT_JWKS_URL" in result.stderr


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"http_tls_cert_file": "server.crt"}, "set both"),
        ({"http_tls_key_file": "server.key"}, "set both"),
        ({"http_tls_client_ca_file": "ca.crt"}, "needs a server certificate"),
        ({"http_tls_cert_file": "missing.crt", "http_tls_key_file": "missing.key"}, "cannot load"),
    ],
)
def test_rest_tls_settings_that_cannot_work_stop_the_start(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    settings = Settings(data_dir=tmp_path, **{k: tmp_path / v for k, v in files.items()})  # type: ignore[arg-type]
    with pytest.raises(StartupError, match=message):
        http_config(FastAPI(), settings)


def test_a_blank_metrics_port_means_no_metrics_listener(tmp_path: Path) -> None:
    assert metrics_config(Settings(data_dir=tmp_path, metrics_port="")) is None  # type: ignore[arg-type]
    config = metrics_config(Settings(data_dir=tmp_path))
    assert config is not None and (config.host, config.port) == ("127.0.0.1", 9464)
