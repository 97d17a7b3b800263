"""``kill -9`` of a real ``ekms serve`` while it moves a module between the external key chain
and the local KEK (``PATCH /modules/{name}`` with ``external_wrap``; issue 14, item 3).

The module has many key versions, so the move (one transaction rewrapping every DEK) takes a
while. Each round flips it, kills the process with SIGKILL after a random delay (from 0 to
3 x an unkilled move's measured duration), restarts it and checks:

- the chain is whole (``check_chain``): every version with material is under the KEK the
  module's flag names, and that KEK unwraps it: a move is all or nothing;
- a move acknowledged before the kill is durable;
- asking for the same move again (the operator's retry) lands it, and is a no-op if it had;
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
    running_processes,
    seal,
)

ROUNDS = int(os.environ.get("EKMS_FAULT_ROUNDS", "3"))
SEED = int(os.environ.get("EKMS_FAULT_SEED", str(random.SystemRandom().randrange(1 << 30))))
MODULE = "global.wrap9"
VERSIONS = 40
ROOT_KEY = os.urandom(32)


def _flip(
    node: EkmsProcess, target: bool, delay: float | None
) -> tuple[httpx.Response | None, float]:
    body = {"external_wrap": target}
    return admin_call_killed_after(
        node, lambda client: client.patch(f"/api/v1/modules/{MODULE}", json=body), delay
    )


def _external_wrap(node: EkmsProcess) -> bool:
    return bool(ok(node.call("GET", f"/api/v1/modules/{MODULE}", ADMIN_TOKEN))["external_wrap"])


def _check(node: EkmsProcess, own_kms: OwnKms, pg_url: str, values: list[Sealed]) -> None:
    check_chain(pg_url, own_kms.admin, ROOT_KEY)
    for value in values:
        response = opens(node, value)
        assert response.status_code == 200, response.text
        assert base64.b64decode(response.json()["plaintext"]) == value.plaintext


def test_kill9_during_a_move_leaves_the_module_wholly_under_one_kek(
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
    node = EkmsProcess("kill9-wrap", env, tmp_path / "ekms.log")
    print(f"seed {SEED}")
    with running_processes(node):
        node.wait_ready()
        configure(node, key_id)
        create_module(node, MODULE)
        values = [seal(node, MODULE, b"v1")]
        for version in range(2, VERSIONS + 1):
            ok(node.call("POST", f"/api/v1/modules/{MODULE}/keys/rotate", ADMIN_TOKEN))
            values.append(seal(node, MODULE, f"v{version}".encode()))
        answered, took = _flip(node, False, None)  # measured, not killed
        assert answered is not None and answered.status_code == 200, answered
        _check(node, own_kms, pg_url, values)
        print(f"an unkilled move of {VERSIONS} versions took {took * 1000:.0f} ms")
        for number in range(ROUNDS):
            target = not _external_wrap(node)
            delay = rng.uniform(0, 3 * took)
            answered, _ = _flip(node, target, delay)
            node.start()
            node.wait_ready()
            landed = _external_wrap(node) is target
            print(
                f"round {number + 1}: to external_wrap={target}, killed after "
                f"{delay * 1000:.0f} ms: {'answered' if answered else 'no answer'}, "
                f"{'landed' if landed else 'not landed'}"
            )
            if answered is not None:
                assert answered.status_code == 200 and landed, answered.text
            _check(node, own_kms, pg_url, values)
            retried, _ = _flip(node, target, None)  # the operator asks again
            assert retried is not None and retried.status_code == 200, retried
            assert _external_wrap(node) is target
            _check(node, own_kms, pg_url, values)
            values.append(seal(node, MODULE, f"round {number}".encode()))
