"""``ekms serve --workers N``: N whole servers on the same ports, supervised by one parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.stack import tree_pids

SERVE = [sys.executable, "-c", "from app.cli import main; main()", "serve"]

# Starting processes on a loaded 2-core machine (a CI run beside a benchmark) took over 60 s
# once: the bound is for a process that never comes up, not a performance figure.
STARTUP_SECONDS = 180
pytestmark = pytest.mark.timeout(STARTUP_SECONDS + 180)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "EKMS_HTTP_PORT": str(_free_port()),
        "EKMS_GRPC_PORT": str(_free_port()),
        "EKMS_METRICS_PORT": str(_free_port()),
        "EKMS_DATA_DIR": str(tmp_path / "data"),
        "EKMS_JWT_HS256_SECRET": "workers-test-secret-0123456789abcdef",
        "EKMS_LOG_LEVEL": "WARNING",
        **extra,
    }


@pytest.fixture
def workers(
    pg_url: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    env = _env(tmp_path, EKMS_DATABASE_URL=pg_url)
    log = tmp_path / "serve.log"
    process = subprocess.Popen(  # noqa: S603
        [*SERVE, "--workers", "2"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{env['EKMS_HTTP_PORT']}"
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while len(tree_pids(process.pid)) < 3 or not _live(url):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        yield process, env
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _live(url: str) -> bool:
    try:
        return httpx.get(url + "/livez", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_two_workers_share_every_port_and_stop_together(
    workers: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    process, env = workers
    metrics = f"http://127.0.0.1:{env['EKMS_METRICS_PORT']}/metrics"
    children = tree_pids(process.pid)[1:]
    assert len(children) == 2
    # One worker holds the scheduler lock: new connections to the shared metrics port reach
    # both, so both answers show up.
    leaders = set()
    deadline = time.monotonic() + 20
    while len(leaders) < 2 and time.monotonic() < deadline:
        with httpx.Client() as http:  # a fresh connection each time
            leaders.add("ekms_scheduler_leader 1.0" in http.get(metrics).text)
    assert leaders == {True, False}
    with grpc.insecure_channel(f"127.0.0.1:{env['EKMS_GRPC_PORT']}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)


def test_a_dead_worker_stops_the_others_and_the_exit_code_says_so(
    workers: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    process, _ = workers
    children = tree_pids(process.pid)[1:]
    os.kill(children[0], signal.SIGKILL)
    assert process.wait(timeout=30) == 1
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)


def test_workers_refuse_sqlite(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603
        [*SERVE, "--workers", "2"], env=_env(tmp_path), capture_output=True, timeout=60
    )
    assert result.returncode == 2
    assert b"--workers needs Postgres" in result.stderr
