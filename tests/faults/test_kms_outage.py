"""The external KMS stops answering while two real ``ekms serve`` processes are under load.

Both share one Postgres database, so they see the same key state; they differ only in
``EKMS_UNAVAILABLE_GRACE_MINUTES`` (15 and 0). While the KMS is gone:

- decrypts keep being served from the in-memory chain (no KMS call on the hot path);
- a sync (``POST /api/v1/ekms/sync``) records the key as Unavailable, with an alert;
- the process with a grace period keeps serving; the one without fails closed (409
  EXTERNAL_KEY_UNAVAILABLE, not ready);
- when the KMS is back, one sync brings both back, with no restart.

No call may fail in any other way (no 5xx, no transport error, no wrong plaintext).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.conftest import FAULT_SECONDS
from tests.faults.support import (
    ADMIN_TOKEN,
    DecryptLoad,
    EkmsProcess,
    OwnKms,
    configure,
    create_module,
    ekms_env,
    ok,
    opens,
    running_processes,
    seal,
    until,
)

MODULE = "global.kmsfault"
UNAVAILABLE = "409 EXTERNAL_KEY_UNAVAILABLE"


def _status(node: EkmsProcess) -> dict:
    return ok(node.call("GET", "/api/v1/ekms/status", ADMIN_TOKEN))


def _serves(node: EkmsProcess, value: object) -> int:
    return opens(node, value).status_code  # type: ignore[arg-type]


@pytest.mark.timeout(180)
def test_kms_outage_serves_within_grace_fails_closed_after_and_recovers(
    pg_url: str, aws_env: str, own_kms: OwnKms, tmp_path: Path
) -> None:
    key_id = own_kms.create_key()
    graced = EkmsProcess(
        "grace-15min", ekms_env(pg_url, own_kms.url, aws_env, tmp_path / "a"), tmp_path / "a.log"
    )
    strict = EkmsProcess(
        "grace-0",
        ekms_env(pg_url, own_kms.url, aws_env, tmp_path / "b", EKMS_UNAVAILABLE_GRACE_MINUTES="0"),
        tmp_path / "b.log",
    )
    with running_processes(graced, strict):
        configure(graced, key_id)
        create_module(graced, MODULE)
        values = [seal(graced, MODULE, b"value %d" % i, b"row-%d" % i) for i in range(20)]
        for node in (graced, strict):  # both chains warm: the KEK is unwrapped in each
            until(lambda n=node: _serves(n, values[0]) == 200, 10, f"{node.name} to serve")
        pids = (graced.pid, strict.pid)

        with (
            DecryptLoad(graced, values, workers=1) as load_a,
            DecryptLoad(strict, values, workers=1) as load_b,
        ):
            time.sleep(FAULT_SECONDS)
            own_kms.stop()
            load_a.phase("kms down")
            load_b.phase("kms down")
            time.sleep(FAULT_SECONDS)

            load_a.phase("after sync")
            load_b.phase("after sync")
            sync = ok(graced.call("POST", "/api/v1/ekms/sync", ADMIN_TOKEN))
            assert sync["status"] == "unavailable", sync
            for node in (graced, strict):
                status = _status(node)
                assert status["external_key"]["status"] == "unavailable", status
                assert status["external_key"]["unavailable_since"], status
                assert [a["kind"] for a in status["alerts"]] == ["external_key_unusable"]
            waited = until(lambda: _serves(strict, values[0]) == 409, 15, "grace 0 to fail closed")
            print(f"grace 0: failed closed {waited * 1000:.0f} ms after the sync answered")
            refused = opens(strict, values[0]).json()
            assert refused["reason"] == "EXTERNAL_KEY_UNAVAILABLE", refused
            assert strict.call("GET", "/readyz").status_code == 503
            assert graced.call("GET", "/readyz").status_code == 200
            assert _status(graced)["serving"] is True
            assert _status(strict)["serving"] is False
            time.sleep(FAULT_SECONDS)

            load_a.phase("kms back")
            load_b.phase("kms back")
            own_kms.start()
            sync = ok(graced.call("POST", "/api/v1/ekms/sync", ADMIN_TOKEN))
            assert sync["status"] == "enabled", sync
            waited = until(lambda: _serves(strict, values[0]) == 200, 15, "grace 0 to recover")
            print(f"grace 0: serving again {waited * 1000:.0f} ms after the recovery sync")
            load_a.phase("recovered")
            load_b.phase("recovered")
            time.sleep(FAULT_SECONDS)

        for node in (graced, strict):
            status = _status(node)
            assert status["external_key"]["status"] == "enabled" and status["alerts"] == []
            assert node.call("GET", "/readyz").status_code == 200
        assert (graced.pid, strict.pid) == pids, "recovered without a restart"

    for name, load in (("grace 15 min", load_a), ("grace 0", load_b)):
        for phase, report in load.reports.items():
            print(f"{name:>12} | {phase:<10} | {report.summary()}")
            assert report.wrong == 0
    # Grace 15 min: every call of every phase served.
    for phase, report in load_a.reports.items():
        assert set(report.outcomes) <= {"200"}, (phase, report.outcomes)
        assert report.ok > 0 or phase == "start", phase
    # Grace 0: served until the sync, refused with the one documented reason until the KMS
    # was back, served again after.
    b = load_b.reports
    assert set(b["start"].outcomes) | set(b["kms down"].outcomes) <= {"200"}
    assert b["kms down"].ok > 0
    assert set(b["after sync"].outcomes) <= {"200", UNAVAILABLE}
    assert b["after sync"].outcomes[UNAVAILABLE] > 0
    assert set(b["kms back"].outcomes) <= {"200", UNAVAILABLE}
    assert set(b["recovered"].outcomes) == {"200"}
