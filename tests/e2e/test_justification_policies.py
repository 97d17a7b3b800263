"""Justification requirements on module access policies over REST (create, read, update, the
refusals), the MAP debugger with a justification, and the CLI (``ekms policies ...`` and the
justification column of ``ekms audit``), against the REST app on each database and a live
uvicorn on SQLite."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.e2e.rest_support import (
    APP_ROLE,
    AUDITOR,
    MODULE,
    Cli,
    LiveServer,
    Rest,
    b64,
    live_server,  # noqa: F401 - fixture
    rest_on_each_db,  # noqa: F401 - fixture
    token,
)

M = f"/api/v1/modules/{MODULE}"
HEADER = "x-ekms-justification"
SUPPORT = "CUSTOMER_INITIATED_SUPPORT"


def _body(**changes: Any) -> dict[str, Any]:
    body = {
        "target_type": "role",
        "target": "support",
        "operations": ["decrypt"],
        "result": "track",
        "require_justification": True,
        "justification_codes": [SUPPORT],
    }
    return body | changes


async def test_a_policy_keeps_its_requirement_through_create_read_and_update(
    rest_on_each_db: Rest,  # noqa: F811
) -> None:
    rest = rest_on_each_db
    await rest.seed()
    created = await rest.ok("POST", f"{M}/policies", json=_body())
    assert (created["require_justification"], created["justification_codes"]) == (True, [SUPPORT])
    path = f"/api/v1/policies/{created['id']}"
    assert (await rest.ok("GET", path))["justification_codes"] == [SUPPORT]

    codes = ["LEGAL_REQUEST", "BREAK_GLASS"]
    updated = await rest.ok("PUT", path, json=_body(justification_codes=codes))
    assert updated["justification_codes"] == sorted(codes)
    anycode = await rest.ok("PUT", path, json=_body(justification_codes=[]))
    assert (anycode["require_justification"], anycode["justification_codes"]) == (True, [])
    listed = {p["id"]: p for p in await rest.ok("GET", f"{M}/policies")}
    assert listed[created["id"]]["require_justification"] is True
    plain = [p for p in listed.values() if p["target"] == APP_ROLE]
    assert [(p["require_justification"], p["justification_codes"]) for p in plain] == [(False, [])]

    await rest.flush_audit()
    events = (
        await rest.ok("GET", "/api/v1/audit", (AUDITOR,), params={"action": "policy.update"})
    )["items"]
    assert [e["details"]["justification_codes"] for e in events] == [sorted(codes), []]


async def test_bad_requirements_are_refused_whole(rest_on_each_db: Rest) -> None:  # noqa: F811
    rest = rest_on_each_db
    await rest.seed()
    before = await rest.ok("GET", f"{M}/policies")
    cases = [
        _body(justification_codes=["PLEASE"]),  # not a code
        _body(require_justification=False),  # codes without the requirement
        _body(result="reject"),  # only track policies take one
        _body(result="strict_reject", justification_codes=[]),
    ]
    for body in cases:
        answer = await rest.call("POST", f"{M}/policies", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert await rest.ok("GET", f"{M}/policies") == before


async def test_explain_shows_the_requirement_and_takes_a_justification(
    rest_on_each_db: Rest,  # noqa: F811
) -> None:
    rest = rest_on_each_db
    await rest.seed()
    policy = await rest.ok("POST", f"{M}/policies", json=_body())
    ask = {"subject": "dave", "roles": ["support"], "operation": "decrypt"}
    missing = await rest.ok("POST", f"{M}/policies/explain", json=ask)
    assert (missing["allowed"], missing["justification_required"]) == (False, True)
    assert missing["decided_by"] == policy["id"]
    effects = {p["id"]: (p["effect"], p["justification_codes"]) for p in missing["policies"]}
    assert effects[policy["id"]] == ("unjustified", [SUPPORT])
    assert "requires a justification" in missing["explanation"]

    sent = await rest.ok(
        "POST", f"{M}/policies/explain", json={**ask, "justification": f"{SUPPORT}:t-1"}
    )
    assert (sent["allowed"], sent["justification_required"]) == (True, False)
    wrong = await rest.ok(
        "POST", f"{M}/policies/explain", json={**ask, "justification": "LEGAL_REQUEST"}
    )
    assert (wrong["allowed"], wrong["justification_required"]) == (False, True)
    bad = await rest.call("POST", f"{M}/policies/explain", json={**ask, "justification": "NOPE"})
    assert (bad.status_code, bad.json()["reason"]) == (422, "JUSTIFICATION_INVALID")


async def test_cli_sets_shows_and_explains_requirements_and_audit_shows_them(
    live_server: LiveServer,  # noqa: F811
) -> None:
    ekms = Cli(live_server.url)
    await ekms("modules", "create", MODULE)
    created = json.loads(
        (
            await ekms(
                "policies",
                "create",
                MODULE,
                "--role",
                "support",
                "--op",
                "encrypt",
                "--op",
                "decrypt",
                "--justification-code",
                SUPPORT,
                "-o",
                "json",
            )
        ).stdout
    )
    assert (created["require_justification"], created["justification_codes"]) == (True, [SUPPORT])
    listing = (await ekms("policies", "list", MODULE)).stdout
    assert SUPPORT in listing

    # an update that does not name the requirement keeps it; --no-require-justification drops it
    await ekms("policies", "update", created["id"], "--description", "support desk")
    kept = json.loads((await ekms("policies", "show", created["id"], "-o", "json")).stdout)
    assert (kept["require_justification"], kept["justification_codes"]) == (True, [SUPPORT])
    await ekms("policies", "update", created["id"], "--require-justification")
    anycode = json.loads((await ekms("policies", "show", created["id"], "-o", "json")).stdout)
    assert (anycode["require_justification"], anycode["justification_codes"]) == (True, [SUPPORT])

    explain = ["policies", "explain", MODULE, "--subject", "dave", "--op", "decrypt"]
    table = (await ekms(*explain, "--role", "support")).stdout
    assert table.startswith("denied:") and "unjustified" in table
    ok = (await ekms(*explain, "--role", "support", "--justification", f"{SUPPORT}:t")).stdout
    assert ok.startswith("allowed:")

    # a call over REST with the header, then the audit table shows its justification
    headers = {"Authorization": f"Bearer {token('support', sub='dave')}", HEADER: f"{SUPPORT}:t-7"}
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        sealed = await http.post(
            "/api/v1/crypto/encrypt",
            json={"module": MODULE, "plaintext": b64(b"42")},
            headers=headers,
        )
    assert sealed.status_code == 200, sealed.text
    await live_server.container.ctx.audit.flush()
    audit = (await ekms("audit", "--actor", "dave", roles=(AUDITOR,))).stdout
    assert "justification" in audit and f"{SUPPORT}:t-7" in audit

    dropped = ["policies", "update", created["id"], "--no-require-justification", "-o", "json"]
    after = json.loads((await ekms(*dropped)).stdout)
    assert (after["require_justification"], after["justification_codes"]) == (False, [])


async def test_the_openapi_document_names_the_header_on_data_plane_routes_only(
    rest_on_each_db: Rest,  # noqa: F811
) -> None:
    doc = (await rest_on_each_db.client.get("/openapi.json")).json()

    def headers(path: str, method: str = "post") -> set[str]:
        params = doc["paths"][path][method].get("parameters", [])
        return {p["name"] for p in params if p["in"] == "header"}

    for path in ("/api/v1/crypto/decrypt", "/api/v1/crypto/encrypt-batch", "/api/v1/crypto/mac"):
        assert HEADER in headers(path), path
    assert HEADER not in headers("/api/v1/modules/{name}/policies")
