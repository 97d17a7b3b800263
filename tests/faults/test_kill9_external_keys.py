"""``kill -9`` of a real ``ekms serve`` while it adds or removes an external key (issue 13).

Two AWS keys in two regions of one moto server. Each round adds the key the chain lacks, or
removes the first key (which re-roots the chain on the other), kills the process with SIGKILL
after a random delay (from 0 to 3 x the first add's measured duration: a restarted process's
first add is slower, its KMS clients are cold, so kills land before, during and after), restarts
it and checks:

- the chain is whole: one or two keys, each holding an EKEK of the KEK (a rotation marker);
- an operation acknowledged before the kill is durable;
- every value whose encryption was acknowledged decrypts to its plaintext.

``EKMS_FAULT_ROUNDS`` runs more rounds (each an add and a remove).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.faults.support import (
    ADMIN_TOKEN,
    EkmsProcess,
    OwnKms,
    Sealed,
    admin_call_killed_after,
    configure,
    create_module,
    ekms_env,
    ok,
    opens,
    running_processes,
    seal,
)

ROUNDS = int(os.environ.get("EKMS_FAULT_ROUNDS", "2"))
SEED = int(os.environ.get("EKMS_FAULT_SEED", str(random.SystemRandom().randrange(1 << 30))))
MODULE = "global.keys9"
SECOND_REGION = "us-east-1"
PATH = "/api/v1/ekms/external-keys"


def _keys(node: EkmsProcess) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(node.call("GET", PATH, ADMIN_TOKEN))["items"]
    return items


def _operation(
    node: EkmsProcess, keys: dict[str, tuple[str, str]]
) -> tuple[str, str, dict[str, Any] | None, int]:
    """The next operation: (method, path, body, key count once it lands)."""
    listed = _keys(node)
    if len(listed) == 1:
        missing = next(k for k in keys if k != listed[0]["key_id"])
        key_id, region = keys[missing]
        return "POST", PATH, {"provider": "aws", "key_id": key_id, "region": region}, 2
    return "DELETE", f"{PATH}/{listed[0]['id']}", None, 1


def _run(
    node: EkmsProcess, call: tuple[str, str, dict[str, Any] | None, int], delay: float | None
) -> tuple[httpx.Response | None, float]:
    method, path, body, _ = call
    return admin_call_killed_after(
        node, lambda client: client.request(method, path, json=body), delay
    )


def _check(
    node: EkmsProcess, values: list[Sealed], answered: httpx.Response | None, n: int
) -> None:
    listed = _keys(node)
    assert 1 <= len(listed) <= 2, listed
    assert all(k["rotation_marker"] for k in listed), listed  # each key holds an EKEK
    if answered is not None and answered.status_code in (201, 204):
        assert len(listed) == n, (answered.status_code, listed)
    for value in values:
        response = opens(node, value)
        assert response.status_code == 200, response.text


def test_kill9_during_add_or_remove_leaves_a_chain_that_decrypts_everything_acknowledged(
    pg_url: str, own_kms: OwnKms, aws_env: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)  # noqa: S311 - test randomness, reproducible by seed
    second = boto3.client(
        "kms",
        region_name=SECOND_REGION,
        endpoint_url=own_kms.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )
    first_key = own_kms.create_key()
    second_key = str(second.create_key()["KeyMetadata"]["KeyId"])
    keys = {first_key: (first_key, aws_env), second_key: (second_key, SECOND_REGION)}
    env = ekms_env(pg_url, own_kms.url, aws_env, tmp_path / "data")
    node = EkmsProcess("kill9-keys", env, tmp_path / "ekms.log")
    print(f"seed {SEED}")
    with running_processes(node):
        node.wait_ready()
        configure(node, first_key)
        create_module(node, MODULE)
        values = [seal(node, MODULE, b"before")]
        _, took = _run(node, _operation(node, keys), None)  # measured, not killed
        for i in range(ROUNDS * 2):
            call = _operation(node, keys)
            delay = rng.uniform(0, 3 * took)
            answered, _ = _run(node, call, delay)
            print(f"{call[0]} killed after {delay * 1000:.0f} ms: answered {answered}")
            node.start()
            node.wait_ready()
            _check(node, values, answered, call[3])
            values.append(seal(node, MODULE, f"round {i}".encode()))
