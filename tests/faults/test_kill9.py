"""``kill -9`` of a real ``ekms serve`` at random points of its key lifecycle operations.

Each round starts one operation over REST while values are being encrypted, kills the process
with SIGKILL after a random delay (drawn from 0 to 1.2 x the operation's measured duration, so
most kills land while it is in flight), restarts it and checks:

- the stored chain is whole (``check_chain``): one KEK row, the active one (a rotation deletes
  the old row in its transaction), that decrypts through the KMS and matches its fingerprint,
  exactly one Active version per module, versions 1..n, and the active KEK unwraps every version
  that still has key material;
- an operation acknowledged before the kill is durable;
- every value whose encryption was acknowledged before the kill decrypts to its plaintext,
  except values under a version that a destroy made unusable, which answer the documented
  409 KEY_VERSION_DESTROYED;
- at the end, ``audit verify`` reports the hash chain intact: no false alarm after the kills.

Operations: KEK rotation, module key rotation, key version destruction, and the EKEK rewrap
after the external key rotates (moto ``rotate_key_on_demand`` + ``POST /ekms/sync``).
CI runs one round of each; ``EKMS_FAULT_ROUNDS`` runs more (e.g. 200).
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.faults.support import (
    ADMIN_TOKEN,
    APP_TOKEN,
    EkmsProcess,
    OwnKms,
    Sealed,
    assert_audit_verifies,
    b64,
    bearer,
    check_chain,
    configure,
    create_module,
    ekms_env,
    ok,
    query,
    running_processes,
    seal,
)

ROUNDS = int(os.environ.get("EKMS_FAULT_ROUNDS", "4"))
SEED = int(os.environ.get("EKMS_FAULT_SEED", str(random.SystemRandom().randrange(1 << 30))))
MODULES = [f"global.kill{i}" for i in range(6)]
OPERATIONS = ("kek-rotate", "module-rotate", "destroy", "ekek-rewrap")


@dataclass
class Round:
    operation: str
    delay: float
    answered: httpx.Response | None = None
    error: str | None = None
    sealed: list[Sealed] = field(default_factory=list)


class World:
    def __init__(self, node: EkmsProcess, kms: OwnKms, key_id: str, pg_url: str) -> None:
        self.node, self.kms, self.key_id, self.pg_url = node, kms, key_id, pg_url
        self.values: list[Sealed] = []
        self.rng = random.Random(SEED)  # noqa: S311 - test randomness, reproducible by seed

    def request_for(self, operation: str) -> tuple[Callable[[httpx.Client], httpx.Response], str]:
        """The admin call of ``operation`` (on a client made beforehand) and its subject."""
        if operation == "kek-rotate":
            return lambda c: c.post("/api/v1/ekms/kek/rotate"), "kek"
        if operation == "module-rotate":
            module = self.rng.choice(MODULES)
            return lambda c: c.post(f"/api/v1/modules/{module}/keys/rotate"), module
        if operation == "destroy":
            module, version = self._destroyable()
            path = f"/api/v1/modules/{module}/keys/{version}/destroy"
            return lambda c: c.post(path), f"{module} v{version}"
        self.kms.admin.rotate_key_on_demand(KeyId=self.key_id)
        return lambda c: c.post("/api/v1/ekms/sync"), "ekek"

    def _destroyable(self) -> tuple[str, int]:
        module = self.rng.choice(MODULES)
        keys = ok(self.node.call("GET", f"/api/v1/modules/{module}/keys", ADMIN_TOKEN))
        candidates = [k["version"] for k in keys if k["state"] == "deactivated"]
        if not candidates:  # make one: rotate first (not killed)
            ok(self.node.call("POST", f"/api/v1/modules/{module}/keys/rotate", ADMIN_TOKEN))
            return module, max(k["version"] for k in keys)
        return module, min(candidates)

    def destroyed(self) -> set[tuple[str, int]]:
        rows = query(
            self.pg_url,
            "SELECT m.name, k.version FROM module_keys k JOIN crypto_modules m "
            "ON m.id = k.module_id WHERE k.state = 'destroyed'",
        )
        return {(r["name"], r["version"]) for r in rows}

    def run_round(self, operation: str, delay: float | None) -> tuple[Round, float]:
        """Run ``operation`` with encryptions going on; SIGKILL after ``delay`` (None: no kill).
        Returns the round and how long the operation took (or ran until the kill)."""
        call, subject = self.request_for(operation)
        current = Round(f"{operation} {subject}", delay or 0.0)
        stop = threading.Event()

        # Clients made up front: building one (its TLS context) takes longer than some of the
        # operations, and would skew where the kills land.
        admin_client = httpx.Client(base_url=self.node.url, headers=bearer(ADMIN_TOKEN), timeout=30)
        app_client = httpx.Client(base_url=self.node.url, headers=bearer(APP_TOKEN), timeout=30)

        def encryptor() -> None:
            n = 0
            while not stop.is_set():
                module = MODULES[n % len(MODULES)]
                plaintext, context = os.urandom(12), b"ctx-%d" % n
                body = {"module": module, "plaintext": b64(plaintext), "context": b64(context)}
                try:
                    r = app_client.post("/api/v1/crypto/encrypt", json=body)
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    body = r.json()
                    current.sealed.append(
                        Sealed(module, plaintext, context, body["ciphertext"], body["key_version"])
                    )
                n += 1
                time.sleep(0.01)  # a steady trickle, not a flood: every value is checked later

        def admin() -> None:
            try:
                current.answered = call(admin_client)
            except httpx.TransportError as exc:
                current.error = type(exc).__name__

        writer = threading.Thread(target=encryptor, daemon=True)
        worker = threading.Thread(target=admin, daemon=True)
        writer.start()
        time.sleep(0.05)
        started = time.perf_counter()
        worker.start()
        if delay is None:
            worker.join(timeout=60)
            elapsed = time.perf_counter() - started
        else:
            time.sleep(delay)
            self.node.kill9()
            elapsed = time.perf_counter() - started
            worker.join(timeout=30)
        stop.set()
        writer.join(timeout=30)
        admin_client.close()
        app_client.close()
        self.values.extend(current.sealed)
        return current, elapsed

    def verify_after_restart(self, current: Round) -> Counter[str]:
        chain = check_chain(self.pg_url, self.kms.admin)
        answered = current.answered
        if answered is not None:  # acknowledged before the kill: must be durable
            assert answered.status_code in (200, 201), (current.operation, answered.text)
            self._durable(current.operation, answered.json())
        destroyed = self.destroyed()
        outcomes: Counter[str] = Counter()
        client = httpx.Client(base_url=self.node.url, headers=bearer(APP_TOKEN), timeout=30)
        for value in self.values:
            body = {"module": value.module, "ciphertext": value.ciphertext}
            r = client.post("/api/v1/crypto/decrypt", json={**body, "context": b64(value.context)})
            if (value.module, value.version) in destroyed:
                assert r.status_code == 409 and r.json()["reason"] == "KEY_VERSION_DESTROYED"
                outcomes["refused: destroyed version"] += 1
            else:
                assert r.status_code == 200, (value, r.text)
                assert base64.b64decode(r.json()["plaintext"]) == value.plaintext
                outcomes["decrypted"] += 1
        client.close()
        outcomes["versions"] = chain.versions
        outcomes["deks unwrapped"] = chain.unwrapped
        return outcomes

    def _durable(self, operation: str, body: dict) -> None:
        if operation.startswith("kek-rotate"):
            rows = query(self.pg_url, "SELECT id FROM external_instance_keys WHERE active")
            assert str(rows[0]["id"]) == body["new_kek_id"]
        elif operation.startswith(("module-rotate", "destroy")):
            rows = query(
                self.pg_url,
                "SELECT k.state FROM module_keys k JOIN crypto_modules m ON m.id = k.module_id "
                "WHERE m.name = $1 AND k.version = $2",
                body["module"],
                body["version"],
            )
            assert rows and rows[0]["state"] == body["state"], (operation, rows, body)
        else:
            rows = query(
                self.pg_url, "SELECT rotation_marker FROM external_instance_keys WHERE active"
            )
            assert rows[0]["rotation_marker"] == body["rotation_marker"]


@pytest.mark.timeout(60 + 30 * ROUNDS)
def test_kill9_during_key_operations_never_breaks_the_chain(
    pg_url: str, aws_env: str, own_kms: OwnKms, tmp_path: Path
) -> None:
    print(f"seed {SEED} (EKMS_FAULT_SEED to replay), {ROUNDS} rounds")
    key_id = own_kms.create_key()
    node = EkmsProcess(
        "killed", ekms_env(pg_url, own_kms.url, aws_env, tmp_path / "data"), tmp_path / "ekms.log"
    )
    with running_processes(node):
        configure(node, key_id)
        for i, module in enumerate(MODULES):
            create_module(node, module, "AES-256-SIV" if i % 3 == 2 else "AES-256-GCM")
            ok(node.call("POST", f"/api/v1/modules/{module}/keys/rotate", ADMIN_TOKEN))
        world = World(node, own_kms, key_id, pg_url)
        world.values += [seal(node, m, b"before %s" % m.encode()) for m in MODULES]

        durations: dict[str, float] = {}
        for operation in OPERATIONS:  # one unkilled run of each, to aim the kills
            measured, elapsed = world.run_round(operation, None)
            assert measured.answered is not None and measured.answered.status_code in (200, 201)
            durations[operation] = elapsed
        print("operation durations (ms):", {k: round(v * 1000) for k, v in durations.items()})

        landed: Counter[str] = Counter()
        restarts: list[float] = []
        for number in range(ROUNDS):
            operation = OPERATIONS[number % len(OPERATIONS)]
            delay = world.rng.uniform(0, 1.2 * durations[operation])
            current, _ = world.run_round(operation, delay)
            landed["acknowledged before the kill" if current.answered else "killed in flight"] += 1
            started = time.perf_counter()
            node.start()
            node.wait_ready(30)
            restarts.append(time.perf_counter() - started)
            outcomes = world.verify_after_restart(current)
            if operation == "ekek-rewrap":  # a sync after the restart completes the rewrap
                assert (
                    ok(node.call("POST", "/api/v1/ekms/sync", ADMIN_TOKEN))["status"] == "enabled"
                )
                check_chain(pg_url, own_kms.admin)
            print(
                f"round {number + 1}: {current.operation:<28} kill after {delay * 1000:5.0f} ms, "
                f"{'answered' if current.answered else current.error or 'no answer'}; "
                f"{dict(outcomes)}"
            )
        print(
            f"{ROUNDS} kills survived ({dict(landed)}); {len(world.values)} values checked; "
            f"restart to ready: median {sorted(restarts)[len(restarts) // 2] * 1000:.0f} ms"
        )
        assert_audit_verifies(node)  # no false alarm after the kills
