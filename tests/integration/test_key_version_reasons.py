"""Key lifecycle reasons through the REST API on Postgres: a revoke needs one, and it is kept on
the version (``GET /modules/{name}/keys``) and in the audit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.rest_support import AUDITOR, KEY_MANAGER, MODULE, Rest
from tests.e2e.rest_support import rest_pg as rest_pg  # the fixture

KEYS = f"/api/v1/modules/{MODULE}/keys"
WHY = "the payroll export host was compromised (INC-4711)"


async def _versions(rest: Rest) -> list[tuple[int, str, str | None]]:
    keys = await rest.ok("GET", KEYS, (AUDITOR,))
    return [(k["version"], k["state"], k["state_reason"]) for k in keys]


async def _audited(rest: Rest, action: str) -> list[dict[str, Any]]:
    await rest.flush_audit()
    page = await rest.ok("GET", "/api/v1/audit", (AUDITOR,), params={"action": action})
    return list(page["items"])


@pytest.mark.parametrize(
    "body",
    [None, {}, {"reason": None}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}],
    ids=["no-body", "empty-object", "null", "empty", "blank", "too-long"],
)
async def test_a_revoke_without_a_reason_is_422_and_leaves_the_version_active(
    rest_pg: Rest, body: dict[str, Any] | None
) -> None:
    await rest_pg.seed()
    kwargs = {} if body is None else {"json": body}
    refused = await rest_pg.call("POST", f"{KEYS}/1/revoke", (KEY_MANAGER,), **kwargs)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "reason" in refused.text
    assert await _versions(rest_pg) == [(1, "active", None)]
    assert await _audited(rest_pg, "key.revoke") == []


async def test_a_revoke_with_a_reason_keeps_it_on_the_version_and_in_the_audit(
    rest_pg: Rest,
) -> None:
    await rest_pg.seed()
    revoked = await rest_pg.ok("POST", f"{KEYS}/1/revoke", (KEY_MANAGER,), json={"reason": WHY})
    assert (revoked["state"], revoked["state_reason"]) == ("revoked", WHY)
    assert await _versions(rest_pg) == [(1, "revoked", WHY), (2, "active", None)]
    [event] = await _audited(rest_pg, "key.revoke")
    assert event["actor"] == "alice" and event["module"] == MODULE
    assert event["details"]["reason"] == WHY
    assert event["details"]["new_active_version"] == 2


async def test_suspend_and_destroy_take_an_optional_reason(rest_pg: Rest) -> None:
    await rest_pg.seed()
    await rest_pg.ok("POST", f"{KEYS}/rotate", (KEY_MANAGER,))
    suspended = await rest_pg.ok("POST", f"{KEYS}/1/suspend", (KEY_MANAGER,))
    assert (suspended["state"], suspended["state_reason"]) == ("suspended", None)
    destroyed = await rest_pg.ok(
        "POST", f"{KEYS}/1/destroy", (KEY_MANAGER,), json={"reason": "retention ended"}
    )
    assert (destroyed["state"], destroyed["state_reason"]) == ("destroyed", "retention ended")
    assert await _versions(rest_pg) == [(1, "destroyed", "retention ended"), (2, "active", None)]
    [event] = await _audited(rest_pg, "key.destroy")
    assert event["details"]["reason"] == "retention ended"
