"""A SigV4 client of the XKS proxy on botocore's signer, as AWS KMS would call it.

- ``XksClient(base_url, access_key_id, secret, region)``: ``call(path, body)`` signs the POST
  with ``SigV4Auth.add_auth`` (service ``kms-xks-proxy``); ``at=`` signs as of another time
  (for the skew check, still with botocore's signer maths); ``raw=`` sends bytes as they are.
- ``metadata(...)``: a ``requestMetadata`` object as AWS sends it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "kms-xks-proxy"
PRINCIPAL = "arn:aws:iam::123456789012:user/Alice"
KMS_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def metadata(operation: str = "Encrypt", principal: str = PRINCIPAL, **more: str) -> dict[str, str]:
    return {
        "awsPrincipalArn": principal,
        "kmsKeyArn": KMS_KEY_ARN,
        "kmsOperation": operation,
        "kmsRequestId": str(uuid.uuid4()),
        **more,
    }


def signed_headers(
    url: str,
    body: bytes,
    access_key_id: str,
    secret: str,
    region: str,
    *,
    at: datetime | None = None,
    service: str = SERVICE,
) -> dict[str, str]:
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
    )
    auth = SigV4Auth(Credentials(access_key_id, secret), service, region)
    if at is None:
        auth.add_auth(request)
    else:  # add_auth signs as of now: the same maths, another timestamp
        stamp = at.strftime(SIGV4_TIMESTAMP)
        request.context["timestamp"] = stamp
        request.headers["X-Amz-Date"] = stamp
        canonical = auth.canonical_request(request)
        signature = auth.signature(auth.string_to_sign(request, canonical), request)
        auth._inject_signature_to_request(request, signature)
    return dict(request.headers.items())


@dataclass
class XksClient:
    base_url: str  # https://host:port{prefix}/kms/xks/v1
    access_key_id: str
    secret: str
    region: str
    http: httpx.AsyncClient

    async def call(
        self,
        path: str,
        body: Any,
        *,
        at: datetime | None = None,
        raw: bytes | None = None,
        secret: str | None = None,
        access_key_id: str | None = None,
        region: str | None = None,
        service: str = SERVICE,
    ) -> httpx.Response:
        url = self.base_url + path
        content = raw if raw is not None else json.dumps(body).encode()
        headers = signed_headers(
            url,
            content,
            access_key_id or self.access_key_id,
            secret or self.secret,
            region or self.region,
            at=at,
            service=service,
        )
        return await self.http.post(url, content=content, headers=headers)
