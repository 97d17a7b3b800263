"""How many acknowledged data-plane audit events a ``kill -9`` loses, in each audit mode.

Each round, load threads call REST encrypt (unary, and batches of 5) as one subject of the
round's own while the process is killed with SIGKILL after a random delay; after a restart,
the round's events in ``audit_events`` (the sum of ``count`` for that subject) are compared
with the items the load saw acknowledged (a 200 and, in a batch, an item without an error):

- strict (``EKMS_AUDIT_MODE=strict``): no acknowledged event is lost, in any round. More may
  be written than acknowledged (a call whose event was committed but whose answer the kill cut
  off);
- buffered (the default): the loss is measured and printed per kill, in events and in
  milliseconds of traffic at the round's rate. It is what was recorded since the last committed
  flush took its batch: at most one flush interval (``EKMS_AUDIT_FLUSH_SECONDS``, 1 s here, the
  default) plus two flushes' durations (that flush's, and the one in flight at the kill). Not
  asserted against a time; nothing is ever written that was not sent.

Afterwards ``audit verify`` reports the chain intact (no false alarm after the kills).
``EKMS_AUDIT_KILL_ROUNDS`` sets the rounds per mode (CI: 3; the issue's figure: 100).
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.faults.support import (
    APP_ROLE,
    EkmsProcess,
    OwnKms,
    assert_audit_verifies,
    b64,
    bearer,
    configure,
    create_module,
    ekms_env,
    query,
    running_processes,
    token,
)

ROUNDS = int(os.environ.get("EKMS_AUDIT_KILL_ROUNDS", "3"))
SEED = int(os.environ.get("EKMS_FAULT_SEED", str(random.SystemRandom().randrange(1 << 30))))
MODULE = "global.auditloss"
FLUSH_SECONDS = 1.0
WORKERS = 4
BATCH = 5
WRITTEN = "SELECT coalesce(sum(count), 0) AS n FROM audit_events WHERE actor = $1"


@dataclass
class Tally:
    """What one round's load sent and saw acknowledged, in items."""

    sent: int = 0
    acked: int = 0
    started: float = 0.0
    stopped: float = 0.0

    @property
    def rate(self) -> float:
        """Acknowledged items per second."""
        return self.acked / max(self.stopped - self.started, 1e-9)


def _load(node: EkmsProcess, subject: str, stop: threading.Event, tally: Tally) -> None:
    """Encrypt as ``subject`` until the process goes away (or ``stop``)."""
    lock = threading.Lock()
    headers = bearer(token(subject, APP_ROLE))

    def worker(n: int) -> None:
        with httpx.Client(base_url=node.url, headers=headers, timeout=10) as client:
            i = 0
            while not stop.is_set():
                batch = (i + n) % 2 == 1
                items = BATCH if batch else 1
                if batch:
                    body = {
                        "module": MODULE,
                        "items": [{"id": str(k), "plaintext": b64(b"b")} for k in range(items)],
                    }
                    path = "/api/v1/crypto/encrypt-batch"
                else:
                    path, body = (
                        "/api/v1/crypto/encrypt",
                        {"module": MODULE, "plaintext": b64(b"u")},
                    )
                with lock:
                    tally.sent += items
                try:
                    r = client.post(path, json=body)
                except httpx.TransportError:
                    return  # killed
                if r.status_code == 200:
                    done = sum(1 for x in r.json()["results"] if not x.get("error")) if batch else 1
                    with lock:
                        tally.acked += done
                i += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(WORKERS)]
    tally.started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    tally.stopped = time.perf_counter()


def _kill_rounds(
    mode: str, pg_url: str, own_kms: OwnKms, region: str, tmp_path: Path
) -> list[tuple[Tally, int]]:
    """``ROUNDS`` kills under load in ``mode``: each round's tally and events written."""
    rng = random.Random(f"{SEED}-{mode}")  # noqa: S311 - test randomness, reproducible by seed
    env = ekms_env(
        pg_url,
        own_kms.url,
        region,
        tmp_path / "data",
        EKMS_AUDIT_MODE=mode,
        EKMS_AUDIT_FLUSH_SECONDS=str(FLUSH_SECONDS),
    )
    node = EkmsProcess(f"audit-{mode}", env, tmp_path / f"{mode}.log")
    rounds: list[tuple[Tally, int]] = []
    with running_processes(node):
        configure(node, own_kms.create_key())
        create_module(node, MODULE)
        for number in range(ROUNDS):
            subject = f"loss-{mode}-{number}"
            stop, tally = threading.Event(), Tally()
            load = threading.Thread(target=_load, args=(node, subject, stop, tally), daemon=True)
            load.start()
            time.sleep(rng.uniform(0.5, 0.5 + 2 * FLUSH_SECONDS))  # any phase of the flush tick
            node.kill9()
            load.join(timeout=60)
            stop.set()
            node.start()
            node.wait_ready(30)
            written = int(query(pg_url, WRITTEN, subject)[0]["n"])
            rounds.append((tally, written))
            lost = max(0, tally.acked - written)
            print(
                f"{mode} kill {number + 1}: {tally.acked} acknowledged, {written} written, "
                f"{lost} lost ({lost / tally.rate * 1000 if tally.rate else 0:.0f} ms of "
                f"traffic at {tally.rate:.0f}/s), {tally.sent - tally.acked} unanswered"
            )
        assert_audit_verifies(node)
    return rounds


@pytest.mark.timeout(120 + 20 * ROUNDS)
def test_strict_mode_loses_no_acknowledged_event_to_kill9(
    pg_url: str, aws_env: str, own_kms: OwnKms, tmp_path: Path
) -> None:
    print(f"seed {SEED} (EKMS_FAULT_SEED to replay), {ROUNDS} kills")
    rounds = _kill_rounds("strict", pg_url, own_kms, aws_env, tmp_path)
    for number, (tally, written) in enumerate(rounds, 1):
        assert tally.acked > 0, f"kill {number}: the load was acknowledged nothing"
        assert written >= tally.acked, f"kill {number}: {tally.acked - written} events lost"
        assert written <= tally.sent, f"kill {number}: more written than sent"
    print(
        f"strict: 0 acknowledged events lost across {ROUNDS} kills "
        f"({sum(t.acked for t, _ in rounds)} acknowledged)"
    )


@pytest.mark.timeout(120 + 20 * ROUNDS)
def test_buffered_mode_loss_per_kill_is_measured(
    pg_url: str, aws_env: str, own_kms: OwnKms, tmp_path: Path
) -> None:
    print(f"seed {SEED} (EKMS_FAULT_SEED to replay), {ROUNDS} kills")
    rounds = _kill_rounds("buffered", pg_url, own_kms, aws_env, tmp_path)
    losses = []
    for number, (tally, written) in enumerate(rounds, 1):
        assert tally.acked > 0, f"kill {number}: the load was acknowledged nothing"
        assert written <= tally.sent, f"kill {number}: more written than sent"
        losses.append(max(0, tally.acked - written))
    traffic_ms = sorted(
        lost / tally.rate * 1000 for lost, (tally, _) in zip(losses, rounds, strict=True)
    )
    print(
        f"buffered: lost per kill (events) min {min(losses)}, median "
        f"{sorted(losses)[len(losses) // 2]}, max {max(losses)}; as traffic (ms) median "
        f"{traffic_ms[len(traffic_ms) // 2]:.0f}, max {traffic_ms[-1]:.0f} "
        f"(flush interval {FLUSH_SECONDS * 1000:.0f} ms)"
    )
