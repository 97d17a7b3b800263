"""Dispatches a key reference to the adapter of its provider (``aws`` or ``local``)."""

from __future__ import annotations

from app.application.ports import ExternalKeyRef, KeyManagementService, KmsConnector
from app.domain.errors import InvalidInput
from app.domain.values import KmsProvider


class RoutingKmsConnector:
    def __init__(self, connectors: dict[KmsProvider, KmsConnector]) -> None:
        self._connectors = connectors

    def connect(self, ref: ExternalKeyRef) -> KeyManagementService:
        connector = self._connectors.get(ref.provider)
        if connector is None:
            raise InvalidInput(
                f"the {ref.provider.value} KMS provider is not enabled in this process "
                "(EKMS_KMS_PROVIDER, EKMS_LOCAL_ROOT_KEY / EKMS_LOCAL_ROOT_KEY_FILE)",
                field="provider",
            )
        return connector.connect(ref)

    def endpoint(self, ref: ExternalKeyRef) -> str:
        connector = self._connectors.get(ref.provider)
        return connector.endpoint(ref) if connector else f"{ref.provider.value}: not enabled"

    async def aclose(self) -> None:
        for connector in self._connectors.values():
            await connector.aclose()
