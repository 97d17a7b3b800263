"""The XKS proxy's use cases: authenticate a call (SigV4 under the store's credentials), then
GetHealthStatus, GetKeyMetadata, Encrypt or Decrypt, all served from the key chain's snapshot
(no query while it is cached). Every call is audited with its ``requestMetadata``.

Checks, in order: the URI prefix names a store (``InvalidUriPathException``); the chain can
serve (``InvalidStateException``: the external key is revoked or unusable); the signature
(``AuthenticationFailedException``); the store's quota when ``EKMS_RATE_LIMIT_PER_CALLER`` is
set (``ThrottlingException``: each store is one caller); the body (``ValidationException``);
the key exists (``KeyNotFoundException``); the secondary authorisation
(``AccessDeniedException``); the key is enabled (``InvalidStateException``) and has the usage
(``InvalidKeyUsageException``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.application.context import AppContext
from app.application.limits import RateLimiter
from app.application.ports import SignedRequest, SigV4Verifier
from app.application.snapshot import Snapshot
from app.application.xks import messages as m
from app.application.xks.directory import XksStoreView
from app.domain.audit import AuditResult
from app.domain.errors import (
    DecryptionFailed,
    EkmsError,
    KeyUnavailable,
    ResourceExhausted,
    ServiceUnavailable,
)
from app.domain.keys import KeyEncryptionKey, constant_time_equal
from app.domain.xks import (
    XksErrorName,
    XksKey,
    XksKeyStatus,
    XksKeyUsage,
    XksOperation,
    XksRejected,
)
from app.domain.xks_crypto import IV_SIZE, XksCiphertext, cdiv_sha256

SERVICE = "kms-xks-proxy"
MAX_SKEW = timedelta(minutes=5)  # the spec: older or newer requests SHOULD fail authentication
VENDOR = "ekms"
_PROBE = b"ekms/xks-health-probe/v1"


@dataclass(frozen=True, slots=True)
class XksCall:
    """One call as routed: the store's URI prefix, the operation, the key (not for health)."""

    prefix: str
    operation: XksOperation
    external_key_id: str | None
    request: SignedRequest


@dataclass(frozen=True, slots=True)
class _Served:
    snap: Snapshot
    kek: KeyEncryptionKey
    view: XksStoreView


class XksProxy:
    """The XKS Proxy API v1 over the key chain. ``handle`` answers the response body (a dict)
    or raises ``XksRejected``; the inbound adapter only turns those into HTTP."""

    def __init__(
        self,
        ctx: AppContext,
        verifier: SigV4Verifier,
        *,
        model: str,
        rate: RateLimiter | None = None,
    ) -> None:
        self._ctx = ctx
        self._verifier = verifier
        self._model = model
        self._rate = rate  # per store (the spec: a quota per path prefix); None: no quota

    async def handle(self, call: XksCall) -> dict[str, Any]:
        # Back-pressure, not loss: a full audit buffer (the database away) holds the call.
        await self._ctx.audit.wait_for_capacity()
        meta = m.RequestMetadata({})
        target = f"xks:{call.prefix or '/'}"
        try:
            served = await self._authenticate(call)
            target = f"xks:{served.view.store.name}"
            self._admit(served.view.store.name)
            if call.external_key_id is not None:
                target += f"/{call.external_key_id}"
            data, meta = m.parse_body(call.request.body, call.operation)
            answer = await self._serve(served, call, data, meta)
        except XksRejected as exc:
            self._audit(call, meta, target, exc.name)
            raise
        self._audit(call, meta, target, None)
        return answer

    # --- authentication ---------------------------------------------------------------------

    async def _authenticate(self, call: XksCall) -> _Served:
        try:
            snap = await self._ctx.chain.snapshot()
        except ServiceUnavailable:
            raise XksRejected(
                XksErrorName.DEPENDENCY_TIMEOUT, "the key store is unreachable"
            ) from None
        except EkmsError:
            raise XksRejected(XksErrorName.INTERNAL, "the key store failed") from None
        view = snap.xks.by_prefix.get(call.prefix)
        if view is None:
            raise XksRejected(XksErrorName.INVALID_URI_PATH, "no key store at this URI path")
        try:
            kek = self._ctx.chain.check_serving(snap, None)
        except KeyUnavailable:
            raise XksRejected(
                XksErrorName.INVALID_STATE, "the key store's root of trust is not usable"
            ) from None
        claim = self._verifier.claim(call.request)
        when = _parse_amz_date(claim.amz_date)
        fails = (
            claim.service != SERVICE
            or claim.region != view.store.region
            or claim.date != claim.amz_date[:8]
            or when is None
            or abs(self._ctx.clock.now() - when) > MAX_SKEW
        )
        # Every credential is compared, so the time taken does not say which one matched.
        matched = None
        for credential in view.store.credentials:
            if constant_time_equal(credential.access_key_id, claim.access_key_id):
                matched = credential
        if fails or matched is None:
            raise _unauthenticated()
        self._verifier.verify(call.request, claim, view.secret(kek, matched))
        return _Served(snap, kek, view)

    def _admit(self, store: str) -> None:
        if self._rate is None:
            return
        try:
            self._rate.acquire(f"xks:{store}")
        except ResourceExhausted:
            raise XksRejected(
                XksErrorName.THROTTLING, "the store's request quota is exceeded"
            ) from None

    # --- the operations ---------------------------------------------------------------------

    async def _serve(
        self, served: _Served, call: XksCall, data: dict[str, Any], meta: m.RequestMetadata
    ) -> dict[str, Any]:
        if call.operation is XksOperation.HEALTH:
            return self._health(served.kek)
        key = self._key(served, call, meta)
        if call.operation is XksOperation.METADATA:
            return {
                "keySpec": "AES_256",
                "keyUsage": sorted(u.value for u in key.usage),
                "keyStatus": key.status.value,
            }
        if key.status is not XksKeyStatus.ENABLED:
            raise XksRejected(XksErrorName.INVALID_STATE, "the external key is disabled")
        if call.operation is XksOperation.ENCRYPT:
            request = m.parse_encrypt(data)
            self._require_usage(key, XksKeyUsage.ENCRYPT)
            return await self._encrypt(served, key, request)
        request_d = m.parse_decrypt(data)
        self._require_usage(key, XksKeyUsage.DECRYPT)
        material = served.view.material(served.kek, key, self._ctx.xks_hsm)
        sealed = XksCiphertext(
            request_d.ciphertext, request_d.iv, request_d.tag, request_d.metadata or b""
        )
        try:
            plaintext = await material.decrypt(sealed, request_d.aad)
        except DecryptionFailed:
            raise XksRejected(
                XksErrorName.INVALID_CIPHERTEXT,
                "the ciphertext, initialization vector, additional authenticated data or "
                "authentication tag is invalid",
            ) from None
        return {"plaintext": m.b64(plaintext)}

    def _health(self, kek: KeyEncryptionKey) -> dict[str, Any]:
        # Deep, as the spec asks: the KEK that seals every XKS key seals and opens a probe.
        probe = self._ctx.rng.token_bytes(16)
        try:
            opened = kek.unseal(kek.seal(probe, _PROBE, self._ctx.rng.token_bytes(12)), _PROBE)
        except DecryptionFailed:
            opened = b""
        if opened != probe:
            raise XksRejected(XksErrorName.INTERNAL, "the key chain failed its self-test")
        return {
            # ekms keeps no registry of live replicas (NOTIFY has no membership): each
            # replica answers for itself, as the spec allows (a count of at least 1).
            "xksProxyFleetSize": 1,
            "xksProxyVendor": VENDOR,
            "xksProxyModel": self._model,
            "ekmVendor": VENDOR,
            "ekmFleetDetails": [
                {
                    "id": self._ctx.chain.instance_id,
                    "model": f"{self._model} key chain",
                    "healthStatus": "ACTIVE",
                }
            ],
        }

    def _key(self, served: _Served, call: XksCall, meta: m.RequestMetadata) -> XksKey:
        key = served.view.keys.get(call.external_key_id or "")
        if key is None:
            raise XksRejected(XksErrorName.KEY_NOT_FOUND, "no such external key")
        if not key.allows(meta.principal, meta.kms_operation):
            raise XksRejected(
                XksErrorName.ACCESS_DENIED,
                "the key's authorisation does not allow this principal or KMS operation",
            )
        return key

    @staticmethod
    def _require_usage(key: XksKey, usage: XksKeyUsage) -> None:
        if usage not in key.usage:
            raise XksRejected(
                XksErrorName.INVALID_KEY_USAGE, f"the key does not allow {usage.value}"
            )

    async def _encrypt(
        self, served: _Served, key: XksKey, request: m.EncryptRequest
    ) -> dict[str, Any]:
        material = served.view.material(served.kek, key, self._ctx.xks_hsm)
        iv = self._ctx.rng.token_bytes(IV_SIZE)
        out = await material.encrypt(request.plaintext, request.aad, iv)
        answer = {
            "ciphertext": m.b64(out.ciphertext),
            "ciphertextMetadata": m.b64(out.metadata),
            "initializationVector": m.b64(out.initialization_vector),
            "authenticationTag": m.b64(out.authentication_tag),
        }
        if request.cdiv:
            # Appendix C: the CDIV first, then the round trip it vouches for.
            cdiv = cdiv_sha256(request.aad, out)
            try:
                await material.decrypt(out, request.aad)
            except DecryptionFailed:
                raise XksRejected(XksErrorName.INTERNAL, "the encryption did not verify") from None
            answer["ciphertextDataIntegrityValue"] = m.b64(cdiv)
        return answer

    # --- audit ------------------------------------------------------------------------------

    def _audit(
        self, call: XksCall, meta: m.RequestMetadata, target: str, error: XksErrorName | None
    ) -> None:
        if error is None:
            result = AuditResult.SUCCESS
        elif error in (XksErrorName.ACCESS_DENIED, XksErrorName.AUTHENTICATION_FAILED):
            result = AuditResult.DENIED
        else:
            result = AuditResult.FAILURE
        self._ctx.audit.record(
            actor=meta.principal or "aws-kms",
            action=f"xks.{call.operation.value}",
            result=result,
            target=target,
            reason=error.value if error is not None else None,
            extra=meta.audit_pairs(),
        )


def _unauthenticated() -> XksRejected:
    return XksRejected(XksErrorName.AUTHENTICATION_FAILED, "the SigV4 signature does not verify")


def _parse_amz_date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
