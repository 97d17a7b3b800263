"""``kill -9`` of a real ``ekms serve`` while it rotates the local KEK
(``POST /ekms/local-kek/rotate``): the KEK of the modules with ``external_wrap=false``.

The local module has many key versions, so the rotation (one transaction rewrapping every DEK
under the local KEK) takes a while. Each round rotates, kills the process with SIGKILL after a
random delay (from 0 to 3 x an unkilled rotation's measured duration), restarts it and checks:

- the chain is whole (``check_chain``): one local KEK row, which the local root key unwraps,
  and every version of the local module names it and is unwrapped by it: all or nothing;
- a rotation acknowledged before the kill is durable (the stored local KEK is the new one);
- rotating again (the operator's retry) works;
- every value whose encryption was acknowledged decrypts to its plaintext.

``EKMS_FAULT_ROUNDS`` runs more rounds.
"""

from __future__ import annotations

import base64
import os
import random
from pathlib import Path

import httpx

from tests.faults.support import (
    ADMIN_TOKEN,
    EkmsProcess,
    OwnKms,
    Sealed,
    admin_call_killed_after,
    check_chain,
    configure,
    create_module,
    ekms_env,
    ok,
    opens,
    query,
    running_processes,
    seal,
)

ROUNDS = int(os.environ.get("EKMS_FAULT_ROUNDS", "3"))
SEED = int(os.environ.get("EKMS_FAULT_SEED", str(random.SystemRandom().randrange(1 << 30))))
MODULE = "global.local9"
VERSIONS = 40
ROOT_KEY = os.urandom(32)
ROTATE = "/api/v1/ekms/local-kek/rotate"


def _rotate(node: EkmsProcess, delay: float | None) -> tuple[httpx.Response | None, float]:
    return admin_call_killed_after(node, lambda client: client.post(ROTATE), delay)


def _local_kek_id(pg_url: str) -> str:
    rows = query(pg_url, "SELECT id FROM local_instance_keys")
    assert len(rows) == 1, f"{len(rows)} local KEK rows"
    return str(rows[0]["id"])


def _check(node: EkmsProcess, own_kms: OwnKms, pg_url: str, values: list[Sealed]) -> None:
    chain = check_chain(pg_url, own_kms.admin, ROOT_KEY)
    assert chain is not None
    local = query(pg_url, "SELECT count(*) AS n FROM module_keys WHERE local_kek_id IS NOT NULL")
    assert local[0]["n"] >= VERSIONS  # the module is still local: every version was checked
    for value in values:
        response = opens(node, value)
        assert response.status_code == 200, response.text
        assert base64.b64decode(response.json()["plaintext"]) == value.plaintext


def test_kill9_during_a_local_kek_rotation_leaves_one_whole_local_kek(
    pg_url: str, own_kms: OwnKms, aws_env: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)  # noqa: S311 - test randomness, reproducible by seed
    key_id = own_kms.create_key()
    env = ekms_env(
        pg_url,
        own_kms.url,
        aws_env,
        tmp_path / "data",
        EKMS_LOCAL_ROOT_KEY=base64.b64encode(ROOT_KEY).decode(),
    )
    node = EkmsProcess("kill9-local-kek", env, tmp_path / "ekms.log")
    print(f"seed {SEED}")
    with running_processes(node):
        node.wait_ready()
        configure(node, key_id)
        create_module(node, MODULE)
        body = {"external_wrap": False}
        ok(node.call("PATCH", f"/api/v1/modules/{MODULE}", ADMIN_TOKEN, json=body))
        values = [seal(node, MODULE, b"v1")]
        for version in range(2, VERSIONS + 1):
            ok(node.call("POST", f"/api/v1/modules/{MODULE}/keys/rotate", ADMIN_TOKEN))
            values.append(seal(node, MODULE, f"v{version}".encode()))
        answered, took = _rotate(node, None)  # measured, not killed
        assert answered is not None and answered.status_code == 200, answered
        assert answered.json()["rewrapped_keys"] == VERSIONS
        _check(node, own_kms, pg_url, values)
        print(f"an unkilled rotation of {VERSIONS} versions took {took * 1000:.0f} ms")
        for number in range(ROUNDS):
            before = _local_kek_id(pg_url)
            delay = rng.uniform(0, 3 * took)
            answered, _ = _rotate(node, delay)
            node.start()
            node.wait_ready()
            after = _local_kek_id(pg_url)
            print(
                f"round {number + 1}: killed after {delay * 1000:.0f} ms: "
                f"{'answered' if answered else 'no answer'}, "
                f"{'rotated' if after != before else 'not rotated'}"
            )
            if answered is not None:
                assert answered.status_code == 200, answered.text
                assert answered.json()["new_kek_id"] == after != before
            _check(node, own_kms, pg_url, values)
            retried, _ = _rotate(node, None)  # the operator asks again
            assert retried is not None and retried.status_code == 200, retried
            assert retried.json()["old_kek_id"] == after
            assert _local_kek_id(pg_url) == retried.json()["new_kek_id"]
            _check(node, own_kms, pg_url, values)
            values.append(seal(node, MODULE, f"round {number}".encode()))
