"""Issue 10 over REST: tokens without a bounded lifetime or with a reserved subject are 401
(finding 7), a name with a trailing newline is 422 and no problem echoes a raw control
character (finding 9), and a text ciphertext that is not canonical is DECRYPTION_FAILED
(finding 6)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.rest_support import (
    ADMIN,
    APP_ROLE,
    MODULE,
    SECRET,
    Rest,
    b64,
    rest,  # noqa: F401 - fixture
)

URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def problem_of(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["reason"] == reason
    return problem


def printable_everywhere(value: Any) -> bool:
    """No raw control character in any string of a decoded JSON document."""
    if isinstance(value, str):
        return value.isprintable()
    if isinstance(value, dict):
        return all(printable_everywhere(k) and printable_everywhere(v) for k, v in value.items())
    if isinstance(value, list):
        return all(printable_everywhere(v) for v in value)
    return True


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"sub": "system:ekms"}, "reserved 'system:' prefix"),
        ({"exp": 1e308}, "lifetime exceeds the maximum"),
        ({"exp": 253402300799, "iat": None}, "lifetime exceeds the maximum"),
    ],
    ids=["system-subject", "exp-1e308", "year-9999-no-iat"],
)
async def test_unbounded_or_reserved_tokens_are_401(
    rest: Rest,  # noqa: F811
    claims: dict[str, Any],
    says: str,
) -> None:
    now = int(time.time())
    body = {"sub": "alice", "roles": [ADMIN], "iat": now, "exp": now + 600, **claims}
    token = jwt.encode({k: v for k, v in body.items() if v is not None}, SECRET, "HS256")
    response = await rest.client.get(
        "/api/v1/modules", headers={"Authorization": f"Bearer {token}"}
    )
    problem = problem_of(response, 401, "UNAUTHENTICATED")
    assert says in problem["detail"]


async def test_names_with_a_trailing_newline_are_422_without_echoing_it(
    rest: Rest,  # noqa: F811
) -> None:
    await rest.seed()
    cases: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
        ("/api/v1/crypto/encrypt", (APP_ROLE,), {"module": f"{MODULE}\n", "plaintext": b64(b"x")}),
        (
            "/api/v1/crypto/encrypt",
            (APP_ROLE,),
            {"table": "employees", "column": "iban\n", "plaintext": b64(b"x")},
        ),
        ("/api/v1/modules", (ADMIN,), {"name": "global.other\n"}),
        ("/api/v1/field-configs", (ADMIN,), {"table": "t\n", "column": "c", "module": MODULE}),
        ("/api/v1/modules", (ADMIN,), {"name": "global.other", "x\n\x1b[31m": 1}),
    ]
    for path, roles, body in cases:
        response = await rest.call("POST", path, roles, json=body)
        problem = problem_of(response, 422, "INVALID_INPUT")
        assert printable_everywhere(problem), problem


async def test_a_text_ciphertext_with_its_unused_low_bits_set_is_decryption_failed(
    rest: Rest,  # noqa: F811
) -> None:
    await rest.seed()
    # 11 plaintext bytes: AES-256-GCM ciphertext of 22 + 12 + 11 + 16 = 61 bytes, 61 % 3 == 1,
    # so the last base64url character carries 4 unused bits
    body = {"module": MODULE, "plaintext": b64(b"x" * 11)}
    sealed = await rest.ok("POST", "/api/v1/crypto/encrypt", (APP_ROLE,), json=body)
    text = sealed["ciphertext"]
    assert len(text.removeprefix("ekms:v1:")) % 4 == 2  # one byte in the last two characters
    index = URLSAFE.index(text[-1])
    assert index & 0b1111 == 0
    variant = text[:-1] + URLSAFE[index | 0b0001]

    async def decrypt(ciphertext: str) -> httpx.Response:
        body = {"module": MODULE, "ciphertext": ciphertext}
        return await rest.call("POST", "/api/v1/crypto/decrypt", (APP_ROLE,), json=body)

    assert (await decrypt(text)).status_code == 200
    problem = problem_of(await decrypt(variant), 400, "DECRYPTION_FAILED")
    assert problem["detail"] == "ciphertext could not be decrypted"
