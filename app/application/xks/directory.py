"""The external key stores and their keys as the key chain's snapshot holds them: looked up
by URI prefix and external key id without a query; secrets and key material unsealed lazily
under the KEK, once per snapshot (a change anywhere reloads it; a revoked chain purges it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from app.application.ports import XksHsm
from app.application.xks.ciphers import ChainCipher, HsmCipher, XksCipher
from app.domain.errors import DecryptionFailed
from app.domain.keys import KeyEncryptionKey
from app.domain.xks import (
    XksCredential,
    XksErrorName,
    XksKey,
    XksKeyBackend,
    XksRejected,
    XksStore,
    sealed_binding,
    secret_binding,
)
from app.domain.xks_crypto import XksKeyMaterial


def _lost() -> XksRejected:
    # Sealed under a KEK the chain no longer has (its configuration ended): gone for good.
    return XksRejected(XksErrorName.INVALID_STATE, "the key store's material is lost")


@dataclass(slots=True)
class XksStoreView:
    store: XksStore
    keys: dict[str, XksKey]  # by external key id
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # by access key id
    materials: dict[str, XksCipher] = field(default_factory=dict, repr=False)

    def secret(self, kek: KeyEncryptionKey, credential: XksCredential) -> str:
        cached = self.secrets.get(credential.access_key_id)
        if cached is not None:
            return cached
        binding = secret_binding(self.store.id, credential.access_key_id)
        if credential.kek_id != kek.id:
            raise _lost()
        try:
            secret = kek.unseal(credential.sealed_secret, binding).decode("utf-8")
        except (DecryptionFailed, UnicodeDecodeError):
            raise XksRejected(
                XksErrorName.INTERNAL, "the store's credential cannot be opened"
            ) from None
        self.secrets[credential.access_key_id] = secret
        return secret

    def material(self, kek: KeyEncryptionKey, key: XksKey, hsm: XksHsm | None) -> XksCipher:
        """The key's cipher: its AES key unsealed here, or (``pkcs11``) its HSM object, whose
        label is sealed under the KEK too, so such a key also stops with the chain."""
        cached = self.materials.get(key.external_key_id)
        if cached is not None:
            return cached
        if key.kek_id != kek.id:
            raise _lost()
        try:
            raw = kek.unseal(key.sealed_key, sealed_binding(key))
        except DecryptionFailed:
            raise XksRejected(XksErrorName.INTERNAL, "the key cannot be opened") from None
        material: XksCipher
        if key.backend is XksKeyBackend.PKCS11:
            if hsm is None:
                raise XksRejected(
                    XksErrorName.INVALID_STATE, "the key is in an HSM this process cannot reach"
                )
            try:
                material = HsmCipher(hsm, raw.decode("ascii"))
            except UnicodeDecodeError:
                raise XksRejected(XksErrorName.INTERNAL, "the key cannot be opened") from None
        else:
            material = ChainCipher(XksKeyMaterial(key.external_key_id, raw))
        del raw
        self.materials[key.external_key_id] = material
        return material


@dataclass(slots=True)
class XksDirectory:
    by_prefix: dict[str, XksStoreView] = field(default_factory=dict)

    @classmethod
    def of(cls, stores: Iterable[XksStore], keys: Iterable[XksKey]) -> XksDirectory:
        views = {s.id: XksStoreView(s, {}) for s in stores}
        for key in keys:
            view = views.get(key.store_id)
            if view is not None:
                view.keys[key.external_key_id] = key
        return cls({v.store.uri_prefix: v for v in views.values()})
