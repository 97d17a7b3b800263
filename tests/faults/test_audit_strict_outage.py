"""Strict audit mode fails closed when Postgres goes away, and recovers by itself.

One real ``ekms serve`` with ``EKMS_AUDIT_MODE=strict`` reaches Postgres through a TCP proxy
that is cut under decrypt load, then restored:

- while it is cut, data-plane calls answer 503 ``application/problem+json``
  ``AUDIT_UNAVAILABLE`` (no plaintext is handed out whose use is not on record), where the
  buffered mode keeps serving (``test_db_outage.py``); of the calls sent during the cut, only
  those still waiting for a flush when the path comes back may succeed (one per load worker);
- after the restore, calls succeed again without a restart;
- every call that was answered 200 has its event in ``audit_events`` (the sum of ``count`` is
  at least the 200s: the events of refused calls are kept and may be written too), and
  ``audit verify`` reports the chain intact.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.faults.conftest import FAULT_SECONDS
from tests.faults.support import (
    DecryptLoad,
    EkmsProcess,
    OwnKms,
    TcpProxy,
    assert_audit_verifies,
    configure,
    create_module,
    ekms_env,
    opens,
    proxied_url,
    query,
    running_processes,
    seal,
    until,
)

MODULE = "global.strictcut"
AUDITED = "SELECT coalesce(sum(count), 0) AS n FROM audit_events WHERE actor = 'svc'"
REFUSED = "503 AUDIT_UNAVAILABLE"


@pytest.mark.timeout(180)
def test_strict_mode_fails_closed_while_postgres_is_cut_and_loses_nothing_answered(
    pg_url: str, aws_env: str, own_kms: OwnKms, tmp_path: Path
) -> None:
    real = make_url(pg_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    env = ekms_env(
        proxied_url(pg_url, proxy),
        own_kms.url,
        aws_env,
        tmp_path / "data",
        EKMS_AUDIT_MODE="strict",
    )
    node = EkmsProcess("strict-behind-proxy", env, tmp_path / "ekms.log")
    try:
        with running_processes(node):
            configure(node, own_kms.create_key())
            create_module(node, MODULE)
            values = [seal(node, MODULE, b"value %d" % i, b"row-%d" % i) for i in range(10)]
            answered = len(values)
            pid = node.pid
            with DecryptLoad(node, values, workers=2) as load:
                time.sleep(FAULT_SECONDS)
                proxy.cut()
                load.phase("db down")
                cut = opens(node, values[0])
                assert cut.status_code == 503, cut.text
                assert cut.headers["content-type"] == "application/problem+json"
                assert cut.json()["reason"] == "AUDIT_UNAVAILABLE"
                assert "plaintext" not in cut.json()
                time.sleep(FAULT_SECONDS)
                load.phase("db back")  # first: a call sent after the restore may succeed
                proxy.restore()
                until(lambda: opens(node, values[0]).status_code == 200, 30, "a decrypt again")
                answered += 1
                load.phase("recovered")
                time.sleep(FAULT_SECONDS)
            assert node.pid == pid, "recovered without a restart"

            for phase, report in load.reports.items():
                print(f"{phase:<10} | {report.summary()}")
                assert report.wrong == 0
            reports = load.reports
            assert set(reports["start"].outcomes) <= {"200", REFUSED}, reports["start"].outcomes
            down = reports["db down"]
            assert set(down.outcomes) <= {"200", REFUSED} and down.outcomes[REFUSED] > 0, down
            # Only a call still waiting for its flush when the path came back can succeed: at
            # most one per load worker.
            assert down.ok <= load.workers, down.outcomes
            assert set(reports["db back"].outcomes) <= {"200", REFUSED}
            assert set(reports["recovered"].outcomes) == {"200"}, reports["recovered"].outcomes
            answered += sum(r.ok for r in reports.values())
            written = int(query(pg_url, AUDITED)[0]["n"])
            print(f"{answered} calls answered 200, {written} counted in audit_events")
            assert written >= answered, "an answered call's event is missing"
            assert_audit_verifies(node)
    finally:
        proxy.close()
