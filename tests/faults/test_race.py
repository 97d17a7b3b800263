"""Two real ``ekms serve`` replicas on one database race the same admin action, many times:
both rotate the same module's key at the same moment (a barrier releases both requests).

Each answer is 201 (a new version) or 409 CONCURRENT_UPDATE; nothing else. Afterwards the
state is valid (exactly one Active version, versions 1..n without a gap, every version
unwrapped by the active KEK) and the audit trail explains it: one ``key.rotate`` event per
version created, naming exactly the versions that were answered 201.

Meanwhile each replica serves a decrypt load, so both replicas' audit flushes append to the one
hash chain between the racing admin writes: every successful decrypt is counted in the trail
exactly once, and ``audit verify`` reports the chain intact afterwards (no false alarm).
``EKMS_RACE_ROUNDS`` runs more rounds (CI: 15).
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.faults.support import (
    ADMIN_TOKEN,
    DecryptLoad,
    EkmsProcess,
    OwnKms,
    assert_audit_verifies,
    bearer,
    check_chain,
    configure,
    create_module,
    ekms_env,
    ok,
    query,
    running_processes,
    seal,
    until,
)

ROUNDS = int(os.environ.get("EKMS_RACE_ROUNDS", "15"))
MODULE = "global.race"


@pytest.mark.timeout(90 + ROUNDS)
def test_two_replicas_racing_the_same_rotation_leave_a_valid_explained_state(
    pg_url: str, aws_env: str, own_kms: OwnKms, tmp_path: Path
) -> None:
    nodes = [
        EkmsProcess(
            f"replica-{i}",
            ekms_env(pg_url, own_kms.url, aws_env, tmp_path / f"data-{i}"),
            tmp_path / f"replica-{i}.log",
        )
        for i in range(2)
    ]
    with running_processes(*nodes):
        configure(nodes[0], own_kms.create_key())
        create_module(nodes[0], MODULE)
        clients = [
            httpx.Client(base_url=n.url, headers=bearer(ADMIN_TOKEN), timeout=30) for n in nodes
        ]
        for client in clients:  # both chains loaded, so the race is not against a cold cache
            assert client.get(f"/api/v1/modules/{MODULE}/keys").status_code == 200
        barrier = threading.Barrier(2)
        answers: list[tuple[int, int, str, int | None]] = []  # round, replica, outcome, version
        lock = threading.Lock()

        def rotate(replica: int, round_: int) -> None:
            barrier.wait(timeout=30)
            r = clients[replica].post(f"/api/v1/modules/{MODULE}/keys/rotate")
            body = r.json()
            outcome = (
                str(r.status_code)
                if r.status_code == 201
                else f"{r.status_code} {body.get('reason')}"
            )
            with lock:
                answers.append((round_, replica, outcome, body.get("version")))

        values = [seal(n, MODULE, b"race %d" % i) for i, n in enumerate(nodes)]
        audited = "SELECT coalesce(sum(count), 0) AS n FROM audit_events WHERE actor = 'svc'"
        with (
            DecryptLoad(nodes[0], values, workers=1) as load0,
            DecryptLoad(nodes[1], values, workers=1) as load1,
        ):
            for round_ in range(ROUNDS):
                threads = [threading.Thread(target=rotate, args=(i, round_)) for i in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=60)
        decrypted = sum(r.ok for load in (load0, load1) for r in load.reports.values())
        assert all(
            set(r.outcomes) == {"200"} for load in (load0, load1) for r in load.reports.values()
        )
        made = decrypted + len(values)
        until(lambda: int(query(pg_url, audited)[0]["n"]) >= made, 30, "the audit flushes")
        assert int(query(pg_url, audited)[0]["n"]) == made, "each data-plane call counted once"
        print(f"{decrypted} decrypts on both replicas during the race, each audited once")
        for client in clients:
            client.close()

        outcomes = Counter(outcome for _, _, outcome, _ in answers)
        per_round = Counter(
            tuple(sorted(o for r, _, o, _ in answers if r == round_)) for round_ in range(ROUNDS)
        )
        print(f"{ROUNDS} rounds, {len(answers)} answers: {dict(outcomes)}")
        print("per round:", {" + ".join(k): v for k, v in per_round.items()})
        assert len(answers) == 2 * ROUNDS
        assert set(outcomes) <= {"201", "409 CONCURRENT_UPDATE"}, outcomes
        created = sorted(v for _, _, o, v in answers if o == "201")
        assert len(created) == len(set(created)), "two answers claim the same version"

        keys = ok(nodes[1].call("GET", f"/api/v1/modules/{MODULE}/keys", ADMIN_TOKEN))
        versions = [k["version"] for k in keys]
        assert versions == list(range(1, len(versions) + 1)), versions
        assert [k["version"] for k in keys if k["state"] == "active"] == [versions[-1]]
        assert created == versions[1:], "every version beyond 1 was answered 201, exactly once"
        chain = check_chain(pg_url, own_kms.admin)
        assert chain.unwrapped == len(versions)

        events = query(
            pg_url,
            "SELECT actor, result, details FROM audit_events "
            "WHERE action = 'key.rotate' AND module = $1",
            MODULE,
        )
        audited = sorted(
            (d if isinstance(d, dict) else json.loads(d))["key_version"]
            for d in (e["details"] for e in events)
        )
        assert audited == created, "one key.rotate event per version created, and no other"
        assert {(e["actor"], e["result"]) for e in events} == {("admin", "success")}
        print(f"final: versions 1..{versions[-1]}, one Active; {len(events)} key.rotate events")
        assert_audit_verifies(nodes[0])
