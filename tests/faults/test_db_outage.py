"""Postgres becomes unreachable for one real ``ekms serve`` under load (a TCP proxy between the
process and the shared server is cut; nobody else is affected), then comes back.

- the data plane keeps serving from the in-memory chain, encrypts and decrypts alike;
- admin writes (and reads) answer 503 ``application/problem+json`` DATABASE_UNAVAILABLE,
  ``/readyz`` answers 503;
- data-plane audit events are buffered in memory and reach ``audit_events`` after recovery:
  the sum of their ``count`` equals the successful data-plane calls made, exactly (none lost,
  none written twice);
- the process recovers by itself, without a restart;
- ``audit verify`` reports the hash chain intact afterwards: no false alarm after the cut.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.faults.conftest import FAULT_SECONDS
from tests.faults.support import (
    ADMIN_TOKEN,
    DecryptLoad,
    EkmsProcess,
    OwnKms,
    TcpProxy,
    assert_audit_verifies,
    configure,
    create_module,
    ekms_env,
    encrypt,
    opens,
    proxied_url,
    query,
    running_processes,
    seal,
    until,
)

MODULE = "global.dbfault"
AUDITED = "SELECT coalesce(sum(count), 0) AS n FROM audit_events WHERE actor = 'svc'"


def _audited(pg_url: str) -> int:
    return int(query(pg_url, AUDITED)[0]["n"])


def _problem(response: object) -> dict:
    r = response  # an httpx.Response
    assert r.status_code == 503, (r.status_code, r.text)  # type: ignore[attr-defined]
    assert r.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["reason"] == "DATABASE_UNAVAILABLE", body
    assert body["status"] == 503
    return body


def _audit_gauge(node: EkmsProcess) -> str:
    metrics = node.metrics().text
    return " ".join(line for line in metrics.splitlines() if line.startswith("ekms_audit_buffer"))


@pytest.mark.timeout(180)
def test_database_outage_serves_from_cache_buffers_audit_and_recovers(
    pg_url: str, aws_env: str, own_kms: OwnKms, tmp_path: Path
) -> None:
    # A 2 s reconcile interval: the change feed's periodic reload fires during the outage (it
    # is 30 s by default), and the chain must keep serving its cached snapshot through it.
    extra = {"EKMS_RECONCILE_SECONDS": "2"}
    real = make_url(pg_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    node = EkmsProcess(
        "behind-proxy",
        ekms_env(proxied_url(pg_url, proxy), own_kms.url, aws_env, tmp_path / "data", **extra),
        tmp_path / "ekms.log",
    )
    served = 0  # successful data-plane calls this test made, outside the load generator
    try:
        with running_processes(node):
            configure(node, own_kms.create_key())
            create_module(node, MODULE)
            values = [seal(node, MODULE, b"value %d" % i, b"row-%d" % i) for i in range(20)]
            served += len(values)
            pid = node.pid

            with DecryptLoad(node, values, workers=2) as load:
                time.sleep(FAULT_SECONDS)
                proxy.cut()
                load.phase("db down")
                cut_at = time.monotonic()

                _problem(node.call("POST", "/api/v1/modules", ADMIN_TOKEN, json={"name": "x.y"}))
                _problem(node.call("POST", f"/api/v1/modules/{MODULE}/keys/rotate", ADMIN_TOKEN))
                _problem(node.call("GET", "/api/v1/modules", ADMIN_TOKEN))
                assert node.call("GET", "/readyz").status_code == 503
                encrypted = encrypt(node, MODULE, b"written while the database is away")
                assert encrypted.status_code == 200, encrypted.text
                served += 1
                # 3 x EKMS_FAULT_SECONDS: several reconcile intervals.
                while time.monotonic() - cut_at < 3 * FAULT_SECONDS:
                    during = opens(node, values[0])
                    assert during.status_code == 200, during.text
                    served += 1
                    time.sleep(0.2)
                print("audit buffer while cut:", _audit_gauge(node))
                outage = time.monotonic() - cut_at

                proxy.restore()
                load.phase("db back")
                waited = node.wait_ready(30)
                print(f"ready again {waited * 1000:.0f} ms after the proxy was restored")
                last: list[object] = []

                def rotated() -> bool:
                    r = node.call("POST", f"/api/v1/modules/{MODULE}/keys/rotate", ADMIN_TOKEN)
                    last[:] = [r.status_code, r.text]
                    return r.status_code == 201

                try:
                    until(rotated, 30, "an admin write to succeed")
                finally:
                    print("last admin write:", last)
                load.phase("recovered")
                time.sleep(FAULT_SECONDS)
            assert node.pid == pid, "recovered without a restart"

            for phase, report in load.reports.items():
                print(f"{phase:<10} | {report.summary()}")
                assert report.wrong == 0
                assert set(report.outcomes) <= {"200"}, (phase, report.outcomes)
            assert load.reports["db down"].ok > 0
            made = served + sum(r.ok for r in load.reports.values())
            until(lambda: _audited(pg_url) >= made, 30, "the buffered audit to be written")
            time.sleep(1)  # a duplicate flush would show up now
            written = _audited(pg_url)
            print(
                f"outage {outage:.1f} s; {made} successful data-plane calls, "
                f"{written} counted in audit_events; proxy refused {proxy.refused} connections"
            )
            assert written == made, "no audit event lost or written twice"
            assert_audit_verifies(node)
    finally:
        proxy.close()
