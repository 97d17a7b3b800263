"""Authentication at the gRPC boundary: every way a token can be wrong ends the call with
UNAUTHENTICATED before anything else; health and reflection need no token; a verified token
is not verified again on the hot path."""

from __future__ import annotations

import base64
import json

import grpc
import jwt
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.e2e.conftest import (
    JWT_AUDIENCE,
    JWT_ISSUER,
    Ekms,
    PastClock,
    bearer,
    error_info,
    mint,
    module_target,
)

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none() -> str:
    claims = json.loads(
        base64.urlsafe_b64decode(mint("billing-svc", "billing").split(".")[1] + "==")
    )
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _tampered_signature() -> str:
    head, payload, signature = mint("billing-svc", "billing").split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    return f"{head}.{payload}.{flipped}"


def _tampered_claims() -> str:
    """A genuine signature over other claims: the roles were edited after signing."""
    head, payload, signature = mint("billing-svc", "reader").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["billing"]
    return f"{head}.{_b64(claims)}.{signature}"


def _other_secret() -> str:
    return jwt.encode(
        {
            "sub": "billing-svc",
            "roles": ["billing"],
            "iss": JWT_ISSUER,
            "aud": JWT_AUDIENCE,
            "exp": 4102444800,
        },
        "another-secret-that-is-also-long-enough-0123456789",
        algorithm="HS256",
    )


BAD_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "not-bearer": "Basic YmlsbGluZzpzZWNyZXQ=",
    "garbage": "Bearer not.a.jwt",
    "expired": f"Bearer {mint('billing-svc', 'billing', clock=PastClock(3600))}",
    "wrong-audience": f"Bearer {mint('billing-svc', 'billing', audience='someone-else')}",
    "no-audience": f"Bearer {mint('billing-svc', 'billing', audience=None)}",
    "wrong-issuer": f"Bearer {mint('billing-svc', 'billing', issuer='https://evil.test')}",
    "alg-none": f"Bearer {_alg_none()}",
    "tampered-signature": f"Bearer {_tampered_signature()}",
    "tampered-claims": f"Bearer {_tampered_claims()}",
    "other-secret": f"Bearer {_other_secret()}",
}


def _metadata(authorization: str | None) -> tuple[tuple[str, str], ...]:
    return () if authorization is None else (("authorization", authorization),)


@pytest.mark.parametrize("case", sorted(BAD_AUTHORIZATION))
async def test_bad_tokens_are_unauthenticated_on_every_kind_of_rpc(ekms: Ekms, case: str) -> None:
    md = _metadata(BAD_AUTHORIZATION[case])
    expected_reason = "TOKEN_EXPIRED" if case == "expired" else "UNAUTHENTICATED"

    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await ekms.stub.Encrypt(
            pb.EncryptRequest(target=module_target(), plaintext=b"x"), metadata=md
        )
    assert error_info(unary.value) == (UNAUTHENTICATED, expected_reason)
    assert "eyJ" not in (unary.value.details() or "")  # never echoes the token

    with pytest.raises(grpc.aio.AioRpcError) as batch:
        await ekms.stub.DecryptBatch(pb.DecryptBatchRequest(items=[pb.DecryptItem()]), metadata=md)
    assert error_info(batch.value) == (UNAUTHENTICATED, expected_reason)

    stream = ekms.stub.EncryptStream(
        iter([pb.EncryptItem(id="1", target=module_target(), plaintext=b"x")]), metadata=md
    )
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        async for _ in stream:
            pytest.fail("no result may reach an unauthenticated caller")
    assert error_info(streamed.value) == (UNAUTHENTICATED, expected_reason)


async def test_the_scheme_is_case_insensitive_and_a_good_token_passes(ekms: Ekms) -> None:
    token = mint("billing-svc", "billing")
    for authorization in (f"Bearer {token}", f"bearer {token}"):
        response = await ekms.stub.Encrypt(
            pb.EncryptRequest(target=module_target(), plaintext=b"x"),
            metadata=_metadata(authorization),
        )
        assert response.key_version == 1


async def test_a_verified_token_is_not_verified_again(ekms: Ekms) -> None:
    verifier = ekms.container.verifier
    assert verifier is not None
    md = bearer(mint("cache-check", "billing"))
    before = verifier.stats.signature_checks
    for _ in range(20):
        await ekms.stub.Encrypt(
            pb.EncryptRequest(target=module_target(), plaintext=b"x"), metadata=md
        )
    assert verifier.stats.signature_checks == before + 1


async def test_health_and_reflection_need_no_token(ekms: Ekms) -> None:
    health = health_pb2_grpc.HealthStub(ekms.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service="ekms.v1.Crypto"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING

    reflection = reflection_pb2_grpc.ServerReflectionStub(ekms.channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="ekms.v1.Crypto"),
    ]
    responses = [r async for r in reflection.ServerReflectionInfo(iter(requests))]
    services = {s.name for s in responses[0].list_services_response.service}
    assert {"ekms.v1.Crypto", "grpc.health.v1.Health"} <= services
    assert responses[1].file_descriptor_response.file_descriptor_proto
