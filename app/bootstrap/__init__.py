"""The composition root: builds the whole process from settings, and tears it down.

All wiring is here, and nothing below imports it (the layers contract in pyproject.toml):

- ``_application``: ``wire_application``, the pure wiring of the use cases on a set of ports
  (no I/O); the container uses it with the real adapters, the unit tests with fakes;
- ``_container``: ``Container`` and ``build_container`` (settings -> adapters, each port
  overridable by a test), and ``running()``, the one lifespan: every long-lived resource
  (engine, KMS clients, token verifier, background tasks) is opened in it and closed when it
  exits;
- ``_inbound``: the REST app and the gRPC server, each handed explicit services
  (``build_rest_app``, ``build_grpc_server``, ``grpc_options``), and the TLS settings
  check both listeners share (``check_tls_files``);
- ``_tokens``: where bearer tokens are checked against, and the dev-secret guard;
- ``_errors``: ``StartupError``.
"""

from app.bootstrap._application import Application, wire_application
from app.bootstrap._container import (
    LOCAL_KEY_ID,
    Container,
    RunningChangeFeed,
    build_container,
    build_limits,
    running,
)
from app.bootstrap._errors import StartupError
from app.bootstrap._inbound import (
    GRPC_SHUTDOWN_GRACE_SECONDS,
    api_services,
    build_grpc_server,
    build_rest_app,
    build_xks_app,
    check_tls_files,
    grpc_options,
)
from app.bootstrap._providers import PROVIDERS, build_kms
from app.bootstrap._tokens import (
    build_verifier,
    dev_jwt_secret_file,
    is_loopback_host,
    refuse_public_bind_with_dev_secret,
    resolve_token_settings,
    uses_dev_secret,
)

__all__ = [
    "GRPC_SHUTDOWN_GRACE_SECONDS",
    "LOCAL_KEY_ID",
    "Application",
    "Container",
    "RunningChangeFeed",
    "StartupError",
    "api_services",
    "build_container",
    "build_grpc_server",
    "PROVIDERS",
    "build_kms",
    "build_limits",
    "build_rest_app",
    "build_verifier",
    "build_xks_app",
    "check_tls_files",
    "dev_jwt_secret_file",
    "grpc_options",
    "is_loopback_host",
    "refuse_public_bind_with_dev_secret",
    "resolve_token_settings",
    "running",
    "uses_dev_secret",
    "wire_application",
]
