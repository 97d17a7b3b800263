"""Property tests: the bearer-token verifier (``JwtVerifier.verify``) against hostile input.

Whatever the Authorization value is (arbitrary text, arbitrary bytes, three dot-separated
chunks of anything, a genuine token truncated or with characters changed, a token signed with
the right key over arbitrary claims or headers), the only outcomes are a ``Caller`` or the
documented ``Unauthenticated`` (never another exception), and a damaged genuine token is never
accepted as anyone else than the caller it was minted for.

The verifier under test accepts HS256 (a secret), RS256 (a PEM key) and ES256 (a JWKS served by
httpx's built-in mock transport), with an issuer and an audience configured.
``EKMS_PROPERTY_EXAMPLES`` raises the example counts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm

from app.domain.errors import Unauthenticated
from app.domain.values import Caller
from app.infra.tokens import JwtVerifier, TokenSettings

EXAMPLES = int(os.environ.get("EKMS_PROPERTY_EXAMPLES", "300"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NOW = int(T0.timestamp())
SECRET = "property-test-secret-long-enough-for-hs256"
ISSUER = "https://issuer.test"
AUDIENCE = "ekms"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_KID = "ec-1"


class FixedClock:
    def now(self) -> datetime:
        return T0


def _jwks(_: httpx.Request) -> httpx.Response:
    entry = ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True)
    return httpx.Response(200, json={"keys": [{**entry, "kid": EC_KID, "use": "sig"}]})


Verify = Callable[[str | None], Caller]


@pytest.fixture
def verify() -> Iterator[Verify]:
    """``verify(authorization)`` run to completion on one event loop for the whole test."""
    with asyncio.Runner() as runner:
        client = httpx.AsyncClient(transport=httpx.MockTransport(_jwks))
        pem = RSA_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        verifier = JwtVerifier(
            TokenSettings(
                hs256_secret=SECRET,
                public_key_pem=pem,
                jwks_url="https://idp.test/jwks.json",
                issuer=ISSUER,
                audience=AUDIENCE,
                jwks_min_refresh_seconds=0,
            ),
            FixedClock(),
            http_client=client,
        )
        yield lambda authorization: runner.run(verifier.verify(authorization))
        runner.run(verifier.aclose())
        runner.run(client.aclose())


def outcome(verify: Verify, authorization: str | None) -> Caller | None:
    """The caller, or None when refused with ``Unauthenticated``; anything else propagates."""
    try:
        caller = verify(authorization)
    except Unauthenticated as err:
        assert "eyJ" not in err.message  # a refusal never quotes a token
        return None
    assert isinstance(caller, Caller)
    assert isinstance(caller.subject, str) and caller.subject.strip()
    assert all(isinstance(role, str) and role for role in caller.roles)
    return caller


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def good_claims(sub: str = "alice", roles: tuple[str, ...] = ("ekms.admin",)) -> dict[str, Any]:
    return {
        "sub": sub,
        "roles": list(roles),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": NOW,
        "exp": NOW + 600,
    }


def mint(alg: str, claims: dict[str, Any]) -> str:
    """A genuinely signed token over ``claims`` as given (PyJWS: no claim is checked)."""
    payload = json.dumps(claims).encode()
    if alg == "HS256":
        return jwt.PyJWS().encode(payload, SECRET, algorithm="HS256")
    if alg == "RS256":
        return jwt.PyJWS().encode(payload, RSA_KEY, algorithm="RS256")
    return jwt.PyJWS().encode(payload, EC_KEY, algorithm="ES256", headers={"kid": EC_KID})


ALGS = ("HS256", "RS256", "ES256")

# JSON values of every shape, integers beyond float range included (they once escaped as an
# OverflowError: see the regression test at the end).
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.integers(min_value=-(10**1000), max_value=10**1000),
    st.floats(),  # NaN and infinities included: the verifier must refuse them
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


# --- anything at all -------------------------------------------------------------------------


@PROFILE
@given(st.one_of(st.none(), st.text(max_size=300)))
@example("Bearer")
@example("Bearer  ")
@example("bearer a.b.c")
@example("Bearer a.b")
@example("Bearer ...")
@example("Bearer \u0000.\u0000.\u0000")
@example("Bearer " + "A" * 9000)
@example("Bearer\u00a0eyJhbGciOiJIUzI1NiJ9.e30.")
@example("Bearer eyJhbGciOiJub25lIn0.e30.")
def test_any_text_is_a_caller_or_unauthenticated(verify: Verify, authorization: str | None) -> None:
    assert outcome(verify, authorization) is None


@PROFILE
@given(st.binary(max_size=300))
def test_any_bytes_after_bearer_are_refused(verify: Verify, raw: bytes) -> None:
    for text in (raw.decode("latin-1"), raw.decode("utf-8", errors="replace")):
        assert outcome(verify, f"Bearer {text}") is None


@PROFILE
@given(json_values, json_values, st.binary(max_size=80))
def test_three_chunks_of_anything_are_refused(
    verify: Verify, header: Any, payload: Any, signature: bytes
) -> None:
    token = ".".join(
        (b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature))
    )
    assert outcome(verify, f"Bearer {token}") is None


# --- genuine tokens, damaged -----------------------------------------------------------------


def test_genuine_tokens_of_each_algorithm_pass(verify: Verify) -> None:
    for alg in ALGS:
        caller = outcome(verify, f"Bearer {mint(alg, good_claims())}")
        assert caller == Caller("alice", frozenset({"ekms.admin"}))


@PROFILE
@given(st.sampled_from(ALGS), st.data())
def test_truncated_tokens_are_refused(verify: Verify, alg: str, data: st.DataObject) -> None:
    token = mint(alg, good_claims(sub="trunc"))
    keep = data.draw(st.integers(min_value=0, max_value=len(token) - 1), label="keep")
    assert outcome(verify, f"Bearer {token[:keep]}") is None


@PROFILE
@given(st.sampled_from(ALGS), st.data())
def test_changed_characters_never_make_another_caller(
    verify: Verify, alg: str, data: st.DataObject
) -> None:
    """Change up to three characters of a genuine token: refused, or (the unused low bits of a
    base64url segment's last character) accepted as exactly the caller it was minted for."""
    original = Caller("mallory", frozenset({"svc"}))
    token = list(mint(alg, good_claims(sub="mallory", roles=("svc",))))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="changes")):
        at = data.draw(st.integers(min_value=0, max_value=len(token) - 1), label="at")
        token[at] = data.draw(st.characters(codec="ascii", exclude_characters=" "), label="char")
    caller = outcome(verify, "Bearer " + "".join(token))
    assert caller is None or caller == original


@PROFILE
@given(st.sampled_from(ALGS), st.sampled_from(ALGS), st.integers(min_value=0, max_value=2))
def test_spliced_segments_are_refused(verify: Verify, alg_a: str, alg_b: str, part: int) -> None:
    """A segment of one genuine token spliced into another (header, claims or signature)."""
    a = mint(alg_a, good_claims(sub="a", roles=("reader",))).split(".")
    b = mint(alg_b, good_claims(sub="b", roles=("ekms.admin",))).split(".")
    spliced = list(a)
    spliced[part] = b[part]
    caller = outcome(verify, "Bearer " + ".".join(spliced))
    assert caller is None or caller == Caller("a", frozenset({"reader"})) and spliced == a


# --- the right key, anything signed ---------------------------------------------------------


@st.composite
def claim_sets(draw: st.DrawFn) -> dict[str, Any]:
    """Plausible claims with any of them dropped or replaced by arbitrary JSON."""
    claims = good_claims()
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "sub": st.one_of(st.text(max_size=300), st.sampled_from(["system:ekms", "SYSTEM:x"])),
        "roles": st.one_of(st.lists(st.text(max_size=40), max_size=4), st.text(max_size=40)),
        "iss": st.sampled_from([ISSUER, "https://evil.test", ""]),
        "aud": st.one_of(st.sampled_from([AUDIENCE, "other"]), st.lists(st.text(max_size=8))),
        "iat": st.integers(min_value=NOW - 10**6, max_value=NOW + 10**6),
        "nbf": st.integers(min_value=NOW - 10**6, max_value=NOW + 10**6),
        "exp": st.one_of(
            st.integers(min_value=NOW - 10**6, max_value=NOW + 10**6),
            st.sampled_from([1e308, 253402300799, 2**53]),  # no maximum lifetime (issue 10)
        ),
    }
    for name, values in plausible.items():
        choice = draw(st.sampled_from(["keep", "drop", "plausible", "any"]), label=name)
        if choice == "drop":
            claims.pop(name, None)
        elif choice == "plausible":
            claims[name] = draw(values, label=name)
        elif choice == "any":
            claims[name] = draw(json_values, label=name)
    return claims


@PROFILE
@given(st.sampled_from(ALGS), claim_sets())
def test_signed_arbitrary_claims_are_a_caller_or_unauthenticated(
    verify: Verify, alg: str, claims: dict[str, Any]
) -> None:
    caller = outcome(verify, f"Bearer {mint(alg, claims)}")
    if caller is not None:  # then the claims really were acceptable
        assert claims["sub"] == caller.subject
        assert claims.get("iss") == ISSUER
        assert NOW < claims["exp"] + 30
        # bounded lifetime, and never one of ekms's own actors (issue 10)
        issued = claims.get("iat")
        start = issued if issued is not None else NOW + 30  # without iat: from now, with leeway
        assert claims["exp"] - start <= 86_400
        assert not caller.subject.lstrip().casefold().startswith("system:")


@PROFILE
@given(
    st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jku", "x5u", "cty", "zip"]),
        json_values,
        max_size=4,
    ),
    st.sampled_from(["HS256", "RS256", "ES256", "none", "HS512", "PS256", "EdDSA", ""]),
)
def test_arbitrary_headers_are_a_caller_or_unauthenticated(
    verify: Verify, header: dict[str, Any], alg: str
) -> None:
    """A genuine HMAC over the claims with arbitrary header fields; the header names any alg."""
    full = {**header, "alg": alg}
    signing_input = f"{b64(json.dumps(full).encode())}.{b64(json.dumps(good_claims()).encode())}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    caller = outcome(verify, f"Bearer {signing_input}.{b64(mac)}")
    if caller is not None:  # only an honest HS256 header may pass
        assert alg == "HS256"


# --- a bug this file found (an OverflowError escaped), fixed ----------------------------------


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_an_integer_time_claim_beyond_float_range_is_refused(verify: Verify, claim: str) -> None:
    claims = {**good_claims(), claim: 10**400}
    assert outcome(verify, f"Bearer {mint('HS256', claims)}") is None
