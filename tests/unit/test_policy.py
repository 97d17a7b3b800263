"""MAP evaluation: StrictReject beats Track beats Reject; the default decides otherwise."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.domain.errors import InvalidInput
from app.domain.policy import ModuleAccessPolicy, evaluate
from app.domain.values import AccessResult, Caller, Operation, TargetType

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MOD = uuid.uuid4()
CALLER = Caller("svc-a", frozenset({"payroll", "reader"}))


def policy(
    result: AccessResult,
    target: str = "payroll",
    target_type: TargetType = TargetType.ROLE,
    ops: frozenset[Operation] = frozenset({Operation.ENCRYPT, Operation.DECRYPT}),
    active: bool = True,
) -> ModuleAccessPolicy:
    return ModuleAccessPolicy(uuid.uuid4(), MOD, target_type, target, ops, result, NOW, NOW, active)


def test_default_is_reject() -> None:
    decision = evaluate([], CALLER, Operation.DECRYPT)
    assert not decision.allowed and decision.decided_by is None
    assert "module default" in decision.explain()


def test_module_default_track_allows() -> None:
    assert evaluate([], CALLER, Operation.DECRYPT, AccessResult.TRACK).allowed


def test_track_grants() -> None:
    p = policy(AccessResult.TRACK)
    decision = evaluate([p], CALLER, Operation.DECRYPT)
    assert decision.allowed and decision.decided_by == p.id


def test_reject_yields_to_track() -> None:
    reject, track = policy(AccessResult.REJECT, "reader"), policy(AccessResult.TRACK)
    decision = evaluate([reject, track], CALLER, Operation.DECRYPT)
    assert decision.allowed and decision.matched == (reject.id, track.id)


def test_reject_alone_denies_even_with_track_default() -> None:
    reject = policy(AccessResult.REJECT)
    decision = evaluate([reject], CALLER, Operation.DECRYPT, AccessResult.TRACK)
    assert not decision.allowed and decision.decided_by == reject.id


def test_strict_reject_beats_track_in_any_order() -> None:
    strict = policy(AccessResult.STRICT_REJECT, "svc-a", TargetType.SUBJECT)
    track = policy(AccessResult.TRACK)
    for order in ([strict, track], [track, strict]):
        decision = evaluate(order, CALLER, Operation.ENCRYPT)
        assert not decision.allowed and decision.decided_by == strict.id
        assert decision.result is AccessResult.STRICT_REJECT


def test_operation_granularity() -> None:
    enc_only = policy(AccessResult.TRACK, ops=frozenset({Operation.ENCRYPT}))
    assert evaluate([enc_only], CALLER, Operation.ENCRYPT).allowed
    assert not evaluate([enc_only], CALLER, Operation.DECRYPT).allowed


def test_inactive_and_non_matching_policies_are_evaluated_but_ignored() -> None:
    inactive = policy(AccessResult.TRACK, active=False)
    other = policy(AccessResult.TRACK, "someone-else", TargetType.SUBJECT)
    decision = evaluate([inactive, other], CALLER, Operation.DECRYPT)
    assert not decision.allowed
    assert decision.evaluated == (inactive.id, other.id) and decision.matched == ()
    assert "0 of 2 policies matched" in decision.explain()


def test_subject_target_matches_subject_not_role() -> None:
    by_subject = policy(AccessResult.TRACK, "payroll", TargetType.SUBJECT)
    assert not evaluate([by_subject], CALLER, Operation.DECRYPT).allowed


@pytest.mark.parametrize("target", ["", " padded", "x" * 257])
def test_bad_targets_are_refused(target: str) -> None:
    with pytest.raises(InvalidInput):
        policy(AccessResult.TRACK, target)


def test_no_operations_refused() -> None:
    with pytest.raises(InvalidInput):
        policy(AccessResult.TRACK, ops=frozenset())
