"""The system under test: a fresh Postgres database, moto's KMS server, and a real
``ekms serve`` subprocess configured over REST like a production deployment (auth on, a module
with access policies, a field configuration, audit on).

``Stack`` owns the database and moto for the whole run; ``Server`` is one ``ekms serve``
(restarted with another ``EKMS_WORKERS`` for the scaling case).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.infra.system import SystemClock
from app.infra.tokens import mint_dev_token

PG_ADMIN_ENV = "EKMS_BENCH_PG_ADMIN_URL"
PG_ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
JWT_SECRET = "ekms-bench-hs256-secret-0123456789abcdef-0123456789"  # noqa: S105 - bench only
MODULE = "bench.payroll"
TABLE, COLUMN = "employees", "salary"
APP_ROLE = "svc"
EKMS = [sys.executable, "-c", "from app.cli import main; main()"]
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(sub: str, *roles: str, ttl: int = 3600) -> str:
    return mint_dev_token(
        JWT_SECRET, sub=sub, roles=list(roles), ttl_seconds=ttl, clock=SystemClock()
    )


# --- process CPU and metrics ---------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime+stime seconds) of a process, from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2 :].split()  # fields after "(comm)", starting at state
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / _CLK_TCK


def tree_pids(root: int) -> list[int]:
    """``root`` and its descendants (for ``--workers``: the parent and its worker processes)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents[int(entry)] = stat[0]
    found, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def _task_ns(pid: int) -> int | None:
    """CPU nanoseconds of a process's live threads, from /proc/<pid>/task/*/schedstat: exact,
    where /proc/<pid>/stat counts whole clock ticks (10 ms) and a short round of a
    lightly loaded server could read 0 (seen in a CI run of the smoke test)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for task in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def runq_wait_seconds(pid: int, tid: int | None = None) -> float:
    """Seconds a thread (default: the process's main thread, where its event loop runs) spent
    runnable but waiting for a CPU, from the second field of /proc/<pid>/task/<tid>/schedstat:
    on a shared host, the time other processes held the cores it wanted."""
    try:
        raw = Path(f"/proc/{pid}/task/{tid or pid}/schedstat").read_text().split()
        return int(raw[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of the processes: per-thread schedstat where the kernel has it (threads
    that exit take their time with them, so ekms's long-lived threads are what it counts),
    else utime+stime from /proc/<pid>/stat."""
    total = 0.0
    for pid in pids:
        ns = _task_ns(pid)
        if ns:
            total += ns / 1e9
        elif (stat := _stat(pid)) is not None:
            total += stat[1]
    return total


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (?P<value>\S+)$")


def metric_totals(text: str, *names: str) -> dict[str, float]:
    totals = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] in totals:
            totals[match["name"]] += float(match["value"])
    return totals


_GC_SAMPLE = re.compile(
    r"^ekms_gc_pause_seconds_(?P<kind>count|sum|bucket)\{(?P<labels>[^}]*)\} (?P<value>\S+)$"
)


def gc_totals(text: str) -> dict[str, float]:
    """The server's garbage-collector pauses so far (``ekms_gc_pause_seconds``): collections,
    seconds paused, full (generation 2) collections, and pauses longer than 1 ms."""
    out = {"gc_collections": 0.0, "gc_pause_s": 0.0, "gc_full": 0.0, "gc_over_1ms": 0.0}
    for line in text.splitlines():
        match = _GC_SAMPLE.match(line)
        if match is None:
            continue
        value, labels = float(match["value"]), match["labels"]
        if match["kind"] == "count":
            out["gc_collections"] += value
            out["gc_over_1ms"] += value
            if 'generation="2"' in labels:
                out["gc_full"] += value
        elif match["kind"] == "sum":
            out["gc_pause_s"] += value
        elif 'le="0.001"' in labels:
            out["gc_over_1ms"] -= value
    return out


# --- Postgres and moto ---------------------------------------------------------------------------


def _admin_dsn() -> str:
    return os.environ.get(PG_ADMIN_ENV, PG_ADMIN_DEFAULT)


async def _admin(statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(_admin_dsn(), timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def bench_database() -> Iterator[str]:
    """A new database ``ekms_bench_<random>`` migrated by ``ekms migrate``; dropped afterwards."""
    name = f"ekms_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    base = _admin_dsn().rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{base}/{name}"
    try:
        subprocess.run(
            [*EKMS, "migrate"],
            env={**os.environ, "EKMS_DATABASE_URL": url, "EKMS_LOG_LEVEL": "WARNING"},
            check=True,
            capture_output=True,
        )
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/ekms-bench-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/ekms-bench-aws-credentials",
}


@contextmanager
def moto_kms() -> Iterator[tuple[str, str]]:
    """moto's KMS server on a free port of 127.0.0.1 (in this process) and a fresh key id."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per KMS request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        kms = boto3.session.Session(
            region_name=AWS_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        ).client("kms", endpoint_url=url)
        key_id = str(kms.create_key(Description="ekms bench")["KeyMetadata"]["KeyId"])
        yield url, key_id
    finally:
        server.stop()


# --- ekms serve ----------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log: Path
    workers: int
    metrics_port: int = 0
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        """The metrics listener's scrape URL (the public port answers /metrics 404)."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def cpu(self) -> float:
        return cpu_seconds(self.pids)

    def counters(self) -> dict[str, float]:
        """KMS calls, DB statements and GC pauses so far (from one process: exact only for
        one worker)."""
        text = httpx.get(self.metrics_url, timeout=10).text
        totals = metric_totals(text, "ekms_kms_calls_total", "ekms_db_queries_total")
        return totals | gc_totals(text)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    *,
    database_url: str,
    kms_url: str,
    log: Path,
    workers: int = 1,
    extra: dict[str, str] | None = None,
) -> Server:
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        **AWS_ENV,
        "EKMS_DATABASE_URL": database_url,
        "EKMS_KMS_PROVIDER": "aws",
        "EKMS_AWS_ENDPOINT_URL": kms_url,
        "EKMS_ALLOW_INSECURE_KMS_ENDPOINT": "true",
        "EKMS_AWS_REGION": AWS_ENV["AWS_DEFAULT_REGION"],
        "EKMS_JWT_HS256_SECRET": JWT_SECRET,
        "EKMS_HTTP_PORT": str(http_port),
        "EKMS_GRPC_PORT": str(grpc_port),
        "EKMS_METRICS_PORT": str(metrics_port),
        "EKMS_DATA_DIR": str(log.parent / "data"),
        "EKMS_WORKERS": str(workers),
        "EKMS_BENCH_ECHO": "true",
        **(extra or {}),
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS"):
        env.pop(name, None)
    process = subprocess.Popen(  # noqa: S603
        [*EKMS, "serve"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    server = Server(process, http_port, grpc_port, log, workers, metrics_port)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"ekms serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(server.url + "/livez", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"ekms serve did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    server.pids = tree_pids(process.pid)
    while workers > 1 and len(server.pids) < workers + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        server.pids = tree_pids(process.pid)
    return server


def configure(server: Server, kms_key: str) -> None:
    """The production shape: AWS KMS configuration, a module with a Track policy for the app's
    role (default Reject), a field configuration pointing at it."""
    admin = {"Authorization": "Bearer " + token("bench-admin", "ekms.admin", "ekms.key_manager")}
    with httpx.Client(base_url=server.url + "/api/v1", headers=admin, timeout=30) as http:
        steps = [
            ("PUT", "/ekms/config", {"provider": "aws", "key_id": kms_key}),
            ("POST", "/modules", {"name": MODULE}),
            (
                "POST",
                f"/modules/{MODULE}/policies",
                {
                    "target_type": "role",
                    "target": APP_ROLE,
                    "operations": ["encrypt", "decrypt"],
                    "result": "track",
                },
            ),
            ("POST", "/field-configs", {"table": TABLE, "column": COLUMN, "module": MODULE}),
        ]
        for method, path, body in steps:
            response = http.request(method, path, json=body)
            if response.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
