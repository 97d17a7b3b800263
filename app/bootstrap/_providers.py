"""The external KMS providers this process can reach: one registration line each.

Adding a provider means an adapter package under ``app/infra/kms/``, its settings block in
``app/infra/settings.py`` and one line in ``PROVIDERS`` (with its ``KmsProvider`` value). Each
factory builds the provider's connector from the settings, or returns ``None`` when the
provider is not set up in this process; a configuration naming it is then refused with a clear
message (``RoutingKmsConnector``). Connection settings come only from here, never from a
request: no API caller can point the KEK at another server.
"""

from __future__ import annotations

from collections.abc import Callable

from app.application.local_kek import LOCAL_KEK_REF
from app.application.ports import ExternalKeyRef, KmsConnector
from app.bootstrap._errors import StartupError
from app.domain.errors import EkmsError
from app.domain.values import KmsProvider
from app.infra.kms.aws import AwsKmsConnector
from app.infra.kms.kmip.connector import KmipKmsConnector, KmipSettings
from app.infra.kms.local import open_local_kms
from app.infra.kms.pkcs11 import Pkcs11Config, Pkcs11KmsConnector
from app.infra.kms.pkcs11.config import resolve_pin
from app.infra.kms.pkcs11.xks import Pkcs11XksHsm
from app.infra.kms.routing import RoutingKmsConnector
from app.infra.settings import Settings

ProviderFactory = Callable[[Settings], KmsConnector | None]


def _aws(settings: Settings) -> KmsConnector:
    return AwsKmsConnector(
        default_region=settings.aws_region,
        default_endpoint_url=settings.aws_endpoint_url,
        connect_timeout=settings.kms_connect_timeout_seconds,
        read_timeout=settings.kms_read_timeout_seconds,
    )


def _local(settings: Settings) -> KmsConnector | None:
    env_key = settings.local_root_key.get_secret_value() if settings.local_root_key else None
    if settings.kms_provider != "local" and not env_key and not settings.local_root_key_file:
        return None
    return open_local_kms(
        env_value=env_key,
        file=settings.effective_local_root_key_file,
        create_if_missing=settings.kms_provider == "local",
    )


def _pkcs11_config(settings: Settings, *, read_write: bool = False) -> Pkcs11Config | None:
    if settings.pkcs11_token_label is None:
        return None
    try:
        pin = resolve_pin(settings.pkcs11_pin, settings.pkcs11_pin_file)
    except EkmsError as exc:  # no PIN, or an unreadable / too open PIN file
        raise StartupError(f"the pkcs11 provider cannot start: {exc.message}") from None
    return Pkcs11Config(
        token_label=settings.pkcs11_token_label,
        pin=pin,
        library=settings.pkcs11_library,
        read_write=read_write,
    )


def _pkcs11(settings: Settings) -> KmsConnector | None:
    config = _pkcs11_config(settings)
    return None if config is None else Pkcs11KmsConnector(config)


def build_xks_hsm(settings: Settings) -> Pkcs11XksHsm | None:
    """HSM-resident XKS keys on the pkcs11 provider's token, when it is set up: a connector of
    its own with a read/write session (it makes and destroys token objects; the KEK's session
    stays read-only)."""
    config = _pkcs11_config(settings, read_write=True)
    return None if config is None else Pkcs11XksHsm(Pkcs11KmsConnector(config))


def _kmip(settings: Settings) -> KmsConnector | None:
    try:
        kmip = KmipSettings.from_settings(settings)
    except ValueError as exc:
        raise StartupError(f"the kmip provider cannot start: {exc}") from None
    return None if kmip is None else KmipKmsConnector(kmip)


PROVIDERS: dict[KmsProvider, ProviderFactory] = {
    KmsProvider.AWS: _aws,
    KmsProvider.LOCAL: _local,
    KmsProvider.PKCS11: _pkcs11,
    KmsProvider.KMIP: _kmip,
}


def local_kek_ref(settings: Settings) -> ExternalKeyRef:
    """What wraps a new local KEK: the local root key, or ``EKMS_LOCAL_KEK_KEY_ID`` of
    ``EKMS_LOCAL_KEK_PROVIDER`` (whose provider settings must be set too)."""
    if settings.local_kek_provider == "local":
        return LOCAL_KEK_REF
    if not settings.local_kek_key_id:
        raise StartupError(
            f"EKMS_LOCAL_KEK_PROVIDER={settings.local_kek_provider} needs EKMS_LOCAL_KEK_KEY_ID "
            "(the PKCS#11 key label or the KMIP unique identifier)"
        )
    provider = KmsProvider(settings.local_kek_provider)
    unset = settings.pkcs11_token_label if provider is KmsProvider.PKCS11 else settings.kmip_host
    if unset is None:
        raise StartupError(
            f"EKMS_LOCAL_KEK_PROVIDER={provider.value}, but that provider is not set up "
            "(EKMS_PKCS11_TOKEN_LABEL / EKMS_KMIP_HOST and their settings)"
        )
    return ExternalKeyRef(provider, settings.local_kek_key_id)


def build_kms(settings: Settings) -> KmsConnector:
    """A connector routing each key reference to its provider's adapter."""
    connectors: dict[KmsProvider, KmsConnector] = {}
    for provider, factory in PROVIDERS.items():
        connector = factory(settings)
        if connector is not None:
            connectors[provider] = connector
    return RoutingKmsConnector(connectors)
