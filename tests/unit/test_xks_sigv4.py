"""``BotocoreSigV4Verifier``: botocore-signed requests verify; a changed body, path, header or
secret does not; a signed ``x-amz-content-sha256`` must be the body's own hash."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from app.application.ports import SignedRequest
from app.domain.xks import XksErrorName, XksRejected
from app.infra.sigv4 import BotocoreSigV4Verifier

AKID, SECRET, REGION = (
    "AKIAI2SFODNN7EXAMPLE",
    "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE=",
    "eu-west-1",
)
URL = "https://xks.example.com:8443/p/kms/xks/v1/keys/k1/encrypt"


def signed(body: bytes, **headers: str) -> SignedRequest:
    request = AWSRequest(method="POST", url=URL, data=body, headers=headers)
    SigV4Auth(Credentials(AKID, SECRET), "kms-xks-proxy", REGION).add_auth(request)
    names = {k.lower(): v for k, v in request.headers.items()}
    names["host"] = urlsplit(URL).netloc
    return SignedRequest("POST", urlsplit(URL).path, names, body)


def check(request: SignedRequest, secret: str = SECRET) -> None:
    verifier = BotocoreSigV4Verifier()
    verifier.verify(request, verifier.claim(request), secret)


def test_a_botocore_signature_verifies_and_names_its_scope() -> None:
    request = signed(b'{"a":1}', **{"Content-Type": "application/json"})
    claim = BotocoreSigV4Verifier().claim(request)
    assert (claim.access_key_id, claim.region, claim.service) == (AKID, REGION, "kms-xks-proxy")
    check(request)


@pytest.mark.parametrize("spoil", ["body", "path", "header", "secret"])
def test_any_change_fails(spoil: str) -> None:
    request = signed(b'{"a":1}', **{"Content-Type": "application/json"})
    headers = dict(request.headers)
    body, path, secret = request.body, request.path, SECRET
    if spoil == "body":
        body = b'{"a":2}'
    elif spoil == "path":
        path = path.replace("k1", "k2")
    elif spoil == "header":
        headers["content-type"] = "text/plain"
    else:
        secret = "x" + SECRET[1:]
    with pytest.raises(XksRejected) as refused:
        check(SignedRequest("POST", path, headers, body), secret)
    assert refused.value.name is XksErrorName.AUTHENTICATION_FAILED


def test_a_signed_content_hash_must_be_the_bodys() -> None:
    other = hashlib.sha256(b"another body").hexdigest()
    request = signed(b"another body", **{"X-Amz-Content-SHA256": other})
    check(request)  # honest: the header is the body's hash
    swapped = SignedRequest("POST", request.path, dict(request.headers), b"the real body")
    with pytest.raises(XksRejected):
        check(swapped)  # botocore alone would take the header's word for it


def test_host_and_date_must_be_signed() -> None:
    request = signed(b"{}")
    headers = dict(request.headers)
    headers["authorization"] = headers["authorization"].replace("host;x-amz-date", "x-amz-date")
    with pytest.raises(XksRejected):
        BotocoreSigV4Verifier().claim(SignedRequest("POST", request.path, headers, b"{}"))
