"""Key access justifications (issue 17, item 4): the ``CODE[:text]`` format, the policies that
require one (or certain codes), and the audit rows that record it, on fakes of our ports."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from app.application.crypto import Item
from app.application.policies import (
    PolicyInput,
    create_policy,
    explain_access,
    list_policies,
    update_policy,
)
from app.application.targets import Target
from app.domain.audit import AuditResult
from app.domain.errors import AccessDenied, InvalidInput, Reason
from app.domain.justification import (
    NO_RULE,
    Justification,
    JustificationCode,
    JustificationRule,
    justification_from,
    parse_justification,
)
from app.domain.policy import ModuleAccessPolicy, evaluate
from app.domain.values import AccessResult, Caller, Operation, TargetType
from tests.unit.conftest import ADMIN, APP, World

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SUPPORT = JustificationCode.CUSTOMER_INITIATED_SUPPORT
ACCESS = JustificationCode.CUSTOMER_INITIATED_ACCESS
MODULE = "global.payroll"


def _policy(
    result: AccessResult = AccessResult.TRACK,
    rule: JustificationRule = NO_RULE,
    target: str = "support",
) -> ModuleAccessPolicy:
    return ModuleAccessPolicy(
        id=uuid.uuid4(),
        module_id=uuid.uuid4(),
        target_type=TargetType.ROLE,
        target=target,
        operations=frozenset({Operation.DECRYPT}),
        result=result,
        created_at=NOW,
        updated_at=NOW,
        justification=rule,
    )


def _caller(raw: str | None = None, *roles: str) -> Caller:
    justification = None if raw is None else parse_justification(raw)
    return Caller("dave", frozenset(roles or ("support",)), justification)


# --- the format -----------------------------------------------------------------------------------


def test_a_code_alone_or_with_free_text_parses() -> None:
    assert parse_justification("BREAK_GLASS") == Justification(JustificationCode.BREAK_GLASS)
    parsed = parse_justification("CUSTOMER_INITIATED_SUPPORT:ticket 4711: salary fix")
    assert (parsed.code, parsed.text) == (SUPPORT, "ticket 4711: salary fix")
    assert str(parsed) == "CUSTOMER_INITIATED_SUPPORT:ticket 4711: salary fix"
    assert parsed.audit_extra == (
        ("justification_code", "CUSTOMER_INITIATED_SUPPORT"),
        ("justification_text", "ticket 4711: salary fix"),
    )
    assert parse_justification("LEGAL_REQUEST").audit_extra == (
        ("justification_code", "LEGAL_REQUEST"),
    )
    assert parse_justification("LEGAL_REQUEST:" + "x" * 256).text == "x" * 256


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "NOT_A_CODE",
        "customer_initiated_access",  # codes are exact
        " BREAK_GLASS",
        "BREAK_GLASS:",  # a colon needs text after it
        "BREAK_GLASS:" + "x" * 257,
        "BREAK_GLASS:line\nforged",
        "BREAK_GLASS:nul\x00",
        "BREAK_GLASS:caf\u00e9",  # printable, but not ASCII
    ],
)
def test_a_malformed_justification_is_invalid_input(raw: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_justification(raw)
    assert err.value.reason is Reason.JUSTIFICATION_INVALID
    assert err.value.field == "x-ekms-justification"
    assert "\n" not in str(err.value) and "\x00" not in str(err.value)


def test_a_call_sends_at_most_one_justification() -> None:
    assert justification_from([]) is None
    assert justification_from(["BREAK_GLASS"]) == Justification(JustificationCode.BREAK_GLASS)
    with pytest.raises(InvalidInput) as err:
        justification_from(["BREAK_GLASS", "LEGAL_REQUEST"])
    assert err.value.reason is Reason.JUSTIFICATION_INVALID


# --- the rule and the evaluation ------------------------------------------------------------------


def test_codes_need_the_requirement_and_input_codes_must_be_known() -> None:
    with pytest.raises(InvalidInput):
        JustificationRule(False, frozenset({SUPPORT.value}))
    with pytest.raises(InvalidInput) as err:
        JustificationRule.of(True, frozenset({"CUSTOMER_INITIATED_SUPPORT", "PLEASE"}))
    assert err.value.field == "justification_codes" and "PLEASE" in str(err.value)


def test_only_a_track_policy_takes_a_requirement() -> None:
    for result in (AccessResult.REJECT, AccessResult.STRICT_REJECT):
        with pytest.raises(InvalidInput) as err:
            _policy(result, JustificationRule(True))
        assert err.value.field == "require_justification"


def test_a_required_justification_grants_only_when_sent() -> None:
    policy = _policy(rule=JustificationRule(True))
    missing = evaluate([policy], _caller(), Operation.DECRYPT)
    assert (missing.allowed, missing.unjustified, missing.decided_by) == (False, True, policy.id)
    assert "requires a justification the call lacks" in missing.explain()
    sent = evaluate([policy], _caller("SYSTEM_OPERATION:nightly"), Operation.DECRYPT)
    assert (sent.allowed, sent.unjustified, sent.decided_by) == (True, False, policy.id)


def test_only_the_listed_codes_grant() -> None:
    policy = _policy(rule=JustificationRule(True, frozenset({SUPPORT.value, ACCESS.value})))
    assert evaluate([policy], _caller("CUSTOMER_INITIATED_SUPPORT:t-1"), Operation.DECRYPT).allowed
    assert evaluate([policy], _caller("CUSTOMER_INITIATED_ACCESS"), Operation.DECRYPT).allowed
    wrong = evaluate([policy], _caller("BREAK_GLASS"), Operation.DECRYPT)
    assert (wrong.allowed, wrong.unjustified) == (False, True)


def test_the_module_default_does_not_grant_past_an_unmet_requirement() -> None:
    policy = _policy(rule=JustificationRule(True))
    decision = evaluate([policy], _caller(), Operation.DECRYPT, default=AccessResult.TRACK)
    assert (decision.allowed, decision.unjustified) == (False, True)
    # the requirement binds only the callers the policy matches
    other = evaluate([policy], _caller(None, "app"), Operation.DECRYPT, AccessResult.TRACK)
    assert (other.allowed, other.decided_by) == (True, None)


def test_another_track_policy_still_grants_and_strict_reject_still_denies() -> None:
    needs = _policy(rule=JustificationRule(True), target="support")
    plain = _policy(target="app")
    both = _caller(None, "support", "app")
    granted = evaluate([needs, plain], both, Operation.DECRYPT)
    assert (granted.allowed, granted.decided_by) == (True, plain.id)
    ban = _policy(AccessResult.STRICT_REJECT, target="support")
    banned = evaluate([needs, ban], _caller("BREAK_GLASS"), Operation.DECRYPT)
    assert (banned.allowed, banned.unjustified, banned.decided_by) == (False, False, ban.id)


def test_a_stored_code_this_release_does_not_know_grants_nobody() -> None:
    policy = _policy(rule=JustificationRule(True, frozenset({"FROM_A_NEWER_RELEASE"})))
    for raw in (None, "BREAK_GLASS", "CUSTOMER_INITIATED_ACCESS"):
        assert not evaluate([policy], _caller(raw), Operation.DECRYPT).allowed


# --- the data plane and its audit -----------------------------------------------------------------


async def _require(ready: World, *codes: JustificationCode) -> uuid.UUID:
    """Make the world's grant for role payroll require a justification (with ``codes``)."""
    grant = (await list_policies(ready.ctx, MODULE))[0]
    rule = JustificationRule.of(True, frozenset(code.value for code in codes))
    data = PolicyInput(
        grant.target_type,
        grant.target,
        grant.operations,
        grant.result,
        justification=rule,
    )
    await update_policy(ready.ctx, ADMIN, grant.id, data)
    return grant.id


async def _rows(ready: World) -> list[tuple[object, ...]]:
    await ready.ctx.audit.flush()
    rows = [
        (e.action, e.result, e.reason, e.count, dict(e.details))
        for e in ready.db.committed.audit
        if e.actor == APP.subject
    ]
    ready.db.committed.audit.clear()
    return rows


async def test_a_call_lacking_a_required_justification_is_denied_and_audited(
    ready: World,
) -> None:
    blob = await ready.encrypt(b"85000")
    await _rows(ready)
    grant = await _require(ready, SUPPORT)
    target = Target(module=MODULE)
    with pytest.raises(AccessDenied) as err:
        await ready.crypto.decrypt(APP, Item(target, blob))
    assert err.value.reason is Reason.JUSTIFICATION_REQUIRED
    wrong = replace(APP, justification=parse_justification("BREAK_GLASS:oops"))
    with pytest.raises(AccessDenied):
        await ready.crypto.decrypt(wrong, Item(target, blob))
    right = replace(APP, justification=parse_justification("CUSTOMER_INITIATED_SUPPORT:t-9"))
    batch = await ready.crypto.decrypt_batch(right, [Item(target, blob)] * 3)
    assert [r.data for r in batch] == [b"85000"] * 3

    denied = ("decrypt", AuditResult.DENIED, "JUSTIFICATION_REQUIRED", 1)
    assert sorted(await _rows(ready), key=str) == sorted(
        [
            (*denied, {"decided_by": str(grant)}),
            (
                *denied,
                {
                    "decided_by": str(grant),
                    "justification_code": "BREAK_GLASS",
                    "justification_text": "oops",
                },
            ),
            (
                "decrypt",
                AuditResult.SUCCESS,
                None,
                3,
                {
                    "decided_by": str(grant),
                    "justification_code": "CUSTOMER_INITIATED_SUPPORT",
                    "justification_text": "t-9",
                },
            ),
        ],
        key=str,
    )


async def test_a_justification_is_recorded_even_where_none_is_required(ready: World) -> None:
    why = replace(APP, justification=parse_justification("SYSTEM_OPERATION:reindex"))
    target = Target(module=MODULE)
    await ready.crypto.encrypt_batch(why, [Item(target, b"a"), Item(target, b"b")])
    await ready.crypto.encrypt(APP, Item(target, b"c"))
    rows = await _rows(ready)
    by_code = {str(r[4].get("justification_code")): r[3] for r in rows if r[0] == "encrypt"}
    assert by_code == {"SYSTEM_OPERATION": 2, "None": 1}


async def test_explain_shows_the_unmet_requirement(ready: World) -> None:
    grant = await _require(ready)
    asked = Caller("someone", frozenset({"payroll"}))
    missing = await explain_access(ready.ctx, MODULE, asked, Operation.DECRYPT)
    assert (missing.decision.allowed, missing.decision.unjustified) == (False, True)
    assert [missing.effect(p) for p in missing.policies] == ["unjustified"]
    sent = replace(asked, justification=parse_justification("BREAK_GLASS"))
    found = await explain_access(ready.ctx, MODULE, sent, Operation.DECRYPT)
    assert (found.decision.allowed, found.decision.decided_by) == (True, grant)
    assert [found.effect(p) for p in found.policies] == ["decided"]


async def test_a_reject_policy_with_a_requirement_is_refused_whole(ready: World) -> None:
    data = PolicyInput(
        TargetType.ROLE,
        "ops",
        frozenset({Operation.DECRYPT}),
        AccessResult.REJECT,
        justification=JustificationRule(True),
    )
    before = await list_policies(ready.ctx, MODULE)
    with pytest.raises(InvalidInput):
        await create_policy(ready.ctx, ADMIN, MODULE, data)
    assert await list_policies(ready.ctx, MODULE) == before


async def test_calls_that_differ_only_in_free_text_each_record_their_own(ready: World) -> None:
    target = Target(module=MODULE)
    blob = await ready.encrypt(b"85000")
    await _rows(ready)
    # the second and third calls are served from the first one's permit (same code): each row
    # must still carry its own call's text
    for text in ("request 1", "request 2", "request 2"):
        why = replace(APP, justification=parse_justification(f"CUSTOMER_INITIATED_ACCESS:{text}"))
        assert [
            r.data for r in await ready.crypto.decrypt_batch(why, [Item(target, blob)] * 2)
        ] == [b"85000"] * 2
    rows = await _rows(ready)
    assert sorted((r[4]["justification_text"], r[3]) for r in rows) == [
        ("request 1", 2),
        ("request 2", 4),
    ]
