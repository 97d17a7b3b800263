"""``BotocoreSigV4Verifier``: AWS Signature Version 4 checked with botocore's own signer.

The signature is not re-implemented here: the received request is rebuilt as a botocore
``AWSRequest`` holding only the headers the client signed, with the client's timestamp, and
``SigV4Auth`` computes the canonical request, the string to sign and the signature the secret
gives; the two signatures are compared in constant time.

A signed ``x-amz-content-sha256`` header must be the body's own hash: botocore would take the
header's word for it (a signature over a claimed hash, not over the body).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from app.application.ports import SignedRequest, SigV4Claim
from app.domain.xks import XksErrorName, XksRejected

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_REQUIRED_SIGNED = frozenset({"host", "x-amz-date"})


def _rejected() -> XksRejected:
    return XksRejected(XksErrorName.AUTHENTICATION_FAILED, "the SigV4 signature does not verify")


class BotocoreSigV4Verifier:
    """The ``SigV4Verifier`` port on botocore's ``SigV4Auth``."""

    def claim(self, request: SignedRequest) -> SigV4Claim:
        match = _AUTHORIZATION.fullmatch(request.headers.get("authorization", "").strip())
        amz_date = request.headers.get("x-amz-date", "")
        if match is None or not amz_date:
            raise _rejected()
        signed = set(match["headers"].split(";"))
        if not _REQUIRED_SIGNED <= signed or not signed <= set(request.headers):
            raise _rejected()
        return SigV4Claim(match["akid"], match["date"], match["region"], match["service"], amz_date)

    def verify(self, request: SignedRequest, claim: SigV4Claim, secret: str) -> None:
        match = _AUTHORIZATION.fullmatch(request.headers.get("authorization", "").strip())
        if match is None:
            raise _rejected()
        names = match["headers"].split(";")
        headers = {name: request.headers[name] for name in names}
        claimed_hash = headers.pop("x-amz-content-sha256", None)
        body_hash = hashlib.sha256(request.body).hexdigest()
        if claimed_hash is not None and not hmac.compare_digest(claimed_hash, body_hash):
            raise _rejected()
        url = f"https://{headers['host']}{request.path}"
        rebuilt = AWSRequest(method=request.method, url=url, data=request.body, headers=headers)
        if claimed_hash is not None:
            rebuilt.headers["X-Amz-Content-SHA256"] = claimed_hash
        rebuilt.context["timestamp"] = claim.amz_date
        rebuilt.context["payload_signing_enabled"] = True
        auth = SigV4Auth(Credentials(claim.access_key_id, secret), claim.service, claim.region)
        canonical = auth.canonical_request(rebuilt)
        expected = auth.signature(auth.string_to_sign(rebuilt, canonical), rebuilt)
        if not hmac.compare_digest(expected, match["signature"]):
            raise _rejected()
