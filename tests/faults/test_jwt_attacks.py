"""JWT attacks against a server that accepts all three token sources at once (an HS256 secret,
an RSA public key file, a JWKS URL), over REST *and* gRPC.

tests/unit/test_tokens.py covers the verifier alone, tests/e2e/test_grpc_auth.py and
tests/e2e/test_rest_authz.py cover HS256-only servers. Added here, end to end on both
protocols: HS/RS and HS/EC key confusion, a ``kid`` that is not in the JWKS, a known ``kid``
with another signer, a key embedded in the header (``jwk``), ``jku``/``x5u`` pointing at the
attacker's own JWKS (never fetched), an RS256 header naming an EC kid, odd ``kid`` values, and
algorithms no key allows. Genuine tokens of each source pass, as a control.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.bootstrap import build_grpc_server, build_rest_app, running
from app.grpc.server import GrpcOptions
from tests.e2e.rest_support import SECRET, asgi_client, settings_for

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_EC = ec.generate_private_key(ec.SECP256R1())
EC_KID = "ec-1"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims() -> dict[str, Any]:
    now = int(time.time())  # at signing, not at collection: a long suite outlives 10 minutes
    return {"sub": "mallory", "roles": ["ekms.auditor"], "iat": now, "exp": now + 600}


def _hmac_token(header: dict[str, Any], key: bytes) -> str:
    """HS256 over the claims with any key bytes (PyJWT refuses PEM keys as HMAC secrets)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        entry = RSAAlgorithm.to_jwk(public, as_dict=True)
    else:
        entry = ECAlgorithm.to_jwk(public, as_dict=True)
    return {**entry, "kid": kid, "use": "sig"}


@dataclass
class JwksHost:
    """A JWKS endpoint on 127.0.0.1 that records every path asked for."""

    document: dict[str, Any]
    url: str = ""
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def jwks_hosts() -> Iterator[tuple[JwksHost, JwksHost]]:
    """The identity provider's JWKS, and the attacker's (which nobody should ever fetch)."""
    ours = JwksHost({"keys": [_jwk(EC_KEY, EC_KID)]})
    theirs = JwksHost({"keys": [_jwk(ATTACKER_EC, "evil"), _jwk(ATTACKER_RSA, "evil-rsa")]})
    servers = []
    for host in (ours, theirs):

        class Handler(BaseHTTPRequestHandler):
            state = host

            def do_GET(self) -> None:
                self.state.requests.append(self.path)
                body = json.dumps(self.state.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        host.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
        thread.start()
        servers.append((server, thread))
    yield ours, theirs
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


def attacks(evil_jwks_url: str) -> dict[str, str]:
    rsa_pem, ec_pem = _pem(RSA_KEY), _pem(EC_KEY)
    claims = _claims()
    return {
        "hs256-keyed-with-the-rsa-public-pem": _hmac_token({"alg": "HS256"}, rsa_pem),
        "hs256-keyed-with-the-jwks-ec-pem": _hmac_token({"alg": "HS256", "kid": EC_KID}, ec_pem),
        "hs256-keyed-with-the-jwks-json": _hmac_token(
            {"alg": "HS256", "kid": EC_KID}, json.dumps(_jwk(EC_KEY, EC_KID)).encode()
        ),
        "kid-not-in-the-jwks": jwt.encode(
            claims, ATTACKER_EC, algorithm="ES256", headers={"kid": "not-there"}
        ),
        "known-kid-other-signer": jwt.encode(
            claims, ATTACKER_EC, algorithm="ES256", headers={"kid": EC_KID}
        ),
        "rs256-other-signer-no-kid": jwt.encode(claims, ATTACKER_RSA, algorithm="RS256"),
        "rs256-naming-the-ec-kid": jwt.encode(
            claims, ATTACKER_RSA, algorithm="RS256", headers={"kid": EC_KID}
        ),
        "embedded-jwk-header": jwt.encode(
            claims, ATTACKER_EC, algorithm="ES256", headers={"jwk": _jwk(ATTACKER_EC, "evil")}
        ),
        "jku-to-attacker-jwks": jwt.encode(
            claims, ATTACKER_EC, algorithm="ES256", headers={"kid": "evil", "jku": evil_jwks_url}
        ),
        "x5u-to-attacker": jwt.encode(
            claims,
            ATTACKER_RSA,
            algorithm="RS256",
            headers={"kid": "evil-rsa", "x5u": evil_jwks_url},
        ),
        "kid-path-traversal": jwt.encode(
            claims, ATTACKER_EC, algorithm="ES256", headers={"kid": "../../../../etc/passwd"}
        ),
        "kid-sql": jwt.encode(
            claims, ATTACKER_EC, algorithm="ES256", headers={"kid": "' OR '1'='1"}
        ),
        "hs512-with-the-secret": jwt.encode(claims, SECRET, algorithm="HS512"),
        "ps256-with-the-rsa-key": jwt.encode(claims, RSA_KEY, algorithm="PS256"),
        "es384-with-an-attacker-key": jwt.encode(
            claims, ec.generate_private_key(ec.SECP384R1()), algorithm="ES384"
        ),
    }


def genuine() -> dict[str, str]:
    claims = _claims()
    return {
        "hs256-secret": jwt.encode(claims, SECRET, algorithm="HS256"),
        "rs256-pem": jwt.encode(claims, RSA_KEY, algorithm="RS256"),
        "es256-jwks": jwt.encode(claims, EC_KEY, algorithm="ES256", headers={"kid": EC_KID}),
    }


@dataclass
class Both:
    rest: httpx.AsyncClient
    grpc: pb_grpc.CryptoStub

    async def rest_status(self, token: str) -> int:
        r = await self.rest.get("/api/v1/ekms/status", headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 401:
            assert r.json()["reason"] == "UNAUTHENTICATED"
            assert token not in r.text
        return r.status_code

    async def grpc_code(self, token: str) -> grpc.StatusCode:
        try:
            await self.grpc.Encrypt(
                pb.EncryptRequest(target=pb.Target(module="global.none"), plaintext=b"x"),
                metadata=(("authorization", f"Bearer {token}"),),
            )
        except grpc.aio.AioRpcError as err:
            assert token not in (err.details() or "")
            return err.code()
        return grpc.StatusCode.OK


@pytest.fixture
async def both(
    sqlite_url: str, tmp_path: Path, jwks_hosts: tuple[JwksHost, JwksHost]
) -> AsyncIterator[Both]:
    pem_file = tmp_path / "issuer.pem"
    pem_file.write_bytes(_pem(RSA_KEY))
    settings = settings_for(
        sqlite_url,
        tmp_path,
        jwt_public_key_file=pem_file,
        jwt_jwks_url=jwks_hosts[0].url,
        grpc_port=0,
    )
    async with running(settings) as container, asgi_client(build_rest_app(container)) as rest:
        server = build_grpc_server(container, GrpcOptions(port=0))
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield Both(rest, pb_grpc.CryptoStub(channel))
        finally:
            await server.stop(0)


async def test_genuine_tokens_of_every_source_pass_on_rest_and_grpc(both: Both) -> None:
    for name, token in genuine().items():
        assert await both.rest_status(token) == 200, name
        assert await both.grpc_code(token) is not grpc.StatusCode.UNAUTHENTICATED, name


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the HS512 forgery
async def test_jwt_attacks_are_refused_on_rest_and_grpc(
    both: Both, jwks_hosts: tuple[JwksHost, JwksHost]
) -> None:
    ours, theirs = jwks_hosts
    for name, token in attacks(theirs.url).items():
        assert await both.rest_status(token) == 401, name
        assert await both.grpc_code(token) is grpc.StatusCode.UNAUTHENTICATED, name
    assert theirs.requests == [], "the server fetched a key from a URL named in a token"
    print(
        f"{len(attacks(theirs.url))} attacks x 2 protocols refused; JWKS fetches: {ours.requests}"
    )
