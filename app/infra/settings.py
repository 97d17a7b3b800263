"""Process settings from ``EKMS_*`` environment variables (pydantic-settings).

The embedded default needs no variable at all: a SQLite file and a local root key under
``EKMS_DATA_DIR`` (``./data``), migrated automatically on start.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EKMS_", extra="ignore", frozen=True)

    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file under data_dir"
    )
    auto_migrate: bool | None = Field(
        default=None, description="migrate on start; default true for the embedded SQLite"
    )
    instance_id: str = Field(default="default", min_length=1, max_length=128)

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    http_tls_cert_file: Path | None = None
    http_tls_key_file: Path | None = None
    http_tls_client_ca_file: Path | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(
        default=9464, ge=0, le=65535, description="the /metrics listener; blank: none"
    )
    workers: int = Field(default=1, ge=1, le=64)
    xks_host: str = "127.0.0.1"
    xks_port: int | None = Field(
        default=None, ge=0, le=65535, description="the XKS proxy listener; unset: none"
    )
    xks_tls_cert_file: Path | None = None
    xks_tls_key_file: Path | None = None
    xks_tls_client_ca_file: Path | None = None
    xks_tls_client_subject: str | None = Field(
        default=None, description="the client certificate's subject CN the XKS listener requires"
    )

    kms_provider: Literal["local", "aws", "pkcs11", "kmip"] = "local"
    local_root_key: SecretStr | None = None
    local_root_key_file: Path | None = None
    local_kek_provider: Literal["local", "pkcs11", "kmip"] = Field(
        default="local", description="what wraps the local KEK (modules with external_wrap=false)"
    )
    local_kek_key_id: str | None = Field(
        default=None, description="its key: PKCS#11 label or KMIP unique id (pkcs11, kmip)"
    )
    aws_endpoint_url: str | None = Field(
        default=None, description="an emulator's endpoint; https unless explicitly allowed"
    )
    allow_insecure_kms_endpoint: bool = Field(
        default=False, description="accept a plain-http EKMS_AWS_ENDPOINT_URL (emulators only)"
    )
    aws_region: str | None = None
    pkcs11_library: str = Field(
        default="/usr/lib/softhsm/libsofthsm2.so", description="the PKCS#11 module (pkcs11)"
    )
    pkcs11_token_label: str | None = Field(default=None, description="the token (pkcs11)")
    pkcs11_pin: SecretStr | None = None
    pkcs11_pin_file: Path | None = None
    kmip_host: str | None = Field(default=None, description="the KMIP server (kmip provider)")
    kmip_port: int = Field(default=5696, ge=1, le=65535)
    kmip_cert_file: Path | None = Field(default=None, description="client certificate (PEM)")
    kmip_key_file: Path | None = Field(default=None, description="its private key (PEM)")
    kmip_ca_file: Path | None = Field(default=None, description="CA of the server's certificate")
    kms_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    kms_read_timeout_seconds: float = Field(default=5.0, gt=0)

    sync_interval_minutes: int = Field(default=30, ge=1, le=1440)
    unavailable_grace_minutes: int = Field(default=15, ge=0, le=1440)
    revocation_probe_seconds: float | None = Field(
        default=None, ge=5, le=86400, description="prove the EKEK unwraps this often (off: None)"
    )
    audit_flush_seconds: float = Field(default=1.0, gt=0, le=60)
    db_idle_in_transaction_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Postgres ends a session idle in a transaction this long (0: server default)",
    )
    audit_checkpoint_rows: int = Field(
        default=10_000, ge=1, description="sign the audit chain's head every this many rows"
    )
    audit_checkpoint_seconds: float = Field(
        default=300.0, ge=1, le=86_400, description="... or this often, when rows were added"
    )
    audit_mode: Literal["buffered", "strict"] = Field(
        default="buffered",
        description="strict: a data-plane call answers only once its audit event is committed",
    )
    scheduler_enabled: bool = True
    scheduler_tick_seconds: float = Field(default=60.0, gt=0, le=3600)
    reconcile_seconds: float = Field(default=30.0, gt=0, le=3600)

    jwt_hs256_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_public_key_file: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_roles_claim: str = "roles"
    jwt_leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="clock skew tolerated on exp, nbf and iat"
    )
    jwt_max_lifetime_seconds: int = Field(
        default=86_400,
        ge=1,
        description="longest token accepted: exp - iat (or exp - now without iat)",
    )

    grpc_max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_batch_items: int = Field(default=10_000, ge=1)
    rate_limit_per_caller: float | None = Field(
        default=None,
        gt=0,
        description="data-plane items per second per caller (token bucket); off when unset",
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, description="the bucket's size; default: one second's worth"
    )
    max_streams_per_caller: int = Field(default=16, ge=1)
    max_streams: int = Field(default=256, ge=1)
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    grpc_tls_client_ca_file: Path | None = None
    bench_echo: bool = Field(
        default=False, description="also serve the bench-only ekms.bench.v1.Echo (bench/ only)"
    )

    gc_freeze: bool = Field(
        default=True,
        description="after start-up, gc.freeze() what is alive so collections skip it",
    )
    gc_gen0_threshold: int | None = Field(
        default=None,
        ge=100,
        le=1_000_000,
        description="the collector's first threshold once started; blank: Python's (700)",
    )

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("database_url", "aws_endpoint_url", "kmip_host", "pkcs11_token_label")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("metrics_port", "xks_port", mode="before")
    @classmethod
    def _blank_port_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "rate_limit_per_caller", "rate_limit_burst", "gc_gen0_threshold", mode="before"
    )
    @classmethod
    def _blank_is_off(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def effective_rate_limit_burst(self) -> int:
        """The bucket size: as set, else one second's worth of the rate (at least 1)."""
        if self.rate_limit_burst is not None:
            return self.rate_limit_burst
        return max(1, math.ceil(self.rate_limit_per_caller or 1))

    @model_validator(mode="after")
    def _kms_endpoint_is_safe(self) -> Settings:
        url = self.aws_endpoint_url
        if url is None:
            return self
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("https", "http") or any(ch.isspace() for ch in url):
            raise ValueError("EKMS_AWS_ENDPOINT_URL must be an https:// URL")
        if scheme == "http" and not self.allow_insecure_kms_endpoint:
            raise ValueError(
                "EKMS_AWS_ENDPOINT_URL is plain http: the key encryption key would cross the "
                "network unprotected. Use https, or set EKMS_ALLOW_INSECURE_KMS_ENDPOINT=true "
                "for a local emulator"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'ekms.db').resolve()}"

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def effective_auto_migrate(self) -> bool:
        return self.embedded if self.auto_migrate is None else self.auto_migrate

    @property
    def effective_local_root_key_file(self) -> Path:
        return self.local_root_key_file or self.data_dir / "local-root.key"
