"""Runs every call of a ``KmsConnector`` on the ``ControlLoop``, away from the data plane.

Provider-neutral: it wraps whatever connector bootstrap built (AWS, local, routing). Clients
that bind to an event loop (aiobotocore's aiohttp sessions) are created, used and closed on
the control loop only.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.application.ports import (
    ExternalKeyDescription,
    ExternalKeyRef,
    KeyManagementService,
    KmsConnector,
    KmsWrapped,
    RotationState,
)
from app.infra.control_loop import ControlLoop


class IsolatedKms:
    def __init__(self, inner: KeyManagementService, loop: ControlLoop) -> None:
        self._inner = inner
        self._loop = loop
        self.ref = inner.ref

    def __repr__(self) -> str:
        return f"IsolatedKms({self._inner!r})"

    async def wrap(self, key_to_wrap: bytes, context: Mapping[str, str]) -> KmsWrapped:
        return await self._loop.run(lambda: self._inner.wrap(key_to_wrap, context))

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        return await self._loop.run(lambda: self._inner.unwrap(wrapped, context))

    async def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> KmsWrapped:
        return await self._loop.run(lambda: self._inner.rewrap(wrapped, context))

    async def describe(self) -> ExternalKeyDescription:
        return await self._loop.run(self._inner.describe)

    async def rotation_state(self) -> RotationState:
        return await self._loop.run(self._inner.rotation_state)


class IsolatedKmsConnector:
    def __init__(self, inner: KmsConnector, loop: ControlLoop) -> None:
        self._inner = inner
        self.loop = loop

    def __repr__(self) -> str:
        return f"IsolatedKmsConnector({self._inner!r})"

    def connect(self, ref: ExternalKeyRef) -> KeyManagementService:
        return IsolatedKms(self._inner.connect(ref), self.loop)

    def endpoint(self, ref: ExternalKeyRef) -> str:
        return self._inner.endpoint(ref)

    async def aclose(self) -> None:
        await self.loop.aclose(self._inner.aclose)
