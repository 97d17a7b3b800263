"""The harness of the fault tests: real ``ekms serve`` processes, a cuttable TCP proxy, a KMS
server the test may stop and start, REST helpers with minted tokens, a load generator, and a
direct check of the key chain in the database.

Nothing here changes anything shared: the proxy sits between *one* ekms process and the shared
Postgres (cutting it affects only that process), and the KMS server is the test's own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import boto3
import httpx
from moto.server import ThreadedMotoServer
from sqlalchemy.engine import make_url

from app.application.local_kek import LOCAL_KEK_REF
from app.domain.keys import KeyEncryptionKey
from app.infra.kms.local import LocalKms
from app.infra.system import SystemClock
from app.infra.tokens import mint_dev_token

SECRET = "fault-tests-hs256-secret-0123456789abcdef"
SERVE = [sys.executable, "-c", "from app.cli import main; main()", "serve"]
ADMIN_ROLES = ("ekms.admin", "ekms.key_manager", "ekms.auditor")
APP_ROLE = "svc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(sub: str, *roles: str, ttl: int = 3600) -> str:
    return mint_dev_token(SECRET, sub=sub, roles=list(roles), ttl_seconds=ttl, clock=SystemClock())


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def until(check: Callable[[], bool], limit: float, what: str, interval: float = 0.05) -> float:
    """Wait for ``check()``; seconds waited. Fails (never hangs) after ``limit`` seconds."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


# --- a TCP proxy that can be cut ------------------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``. ``cut()`` closes every connection and makes
    new ones close at once (the client sees a reset, like a dead network path); ``restore()``
    forwards again. Threads, so it works whatever the test's event loop does."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open = True
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.accepted = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        with self._lock:
            self._open = False
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._open = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.2)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                is_open = self._open
            if not is_open:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:  # cut while connecting upstream: this one is cut too
                is_open = self._open
                if is_open:
                    self._sockets.update((client, upstream))
            if not is_open:
                self.refused += 1
                _reset(client)
                _reset(upstream)
                continue
            self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)


def _reset(sock: socket.socket) -> None:
    """Close with RST (linger 0), the way a dropped path looks to the peer. The shutdown first
    wakes a pump thread blocked in ``recv`` on it: until that returns, the kernel keeps the
    socket open, and a peer waiting for an answer (a query in flight) would wait forever."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def proxied_url(database_url: str, proxy: TcpProxy) -> str:
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    return url.render_as_string(hide_password=False)


# --- a KMS server of the test's own ---------------------------------------------------------


class OwnKms:
    """moto's KMS server on a fixed port, stoppable and restartable. moto's state lives in the
    process, so a restarted server still has every key."""

    def __init__(self, region: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.running = True
        self.admin = boto3.client(
            "kms",
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
        )

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False

    def start(self) -> None:
        if not self.running:
            self._server.start()
            self.running = True

    def create_key(self) -> str:
        return str(self.admin.create_key(Description="ekms fault test")["KeyMetadata"]["KeyId"])


# --- a real `ekms serve` ------------------------------------------------------------------------


@dataclass
class EkmsProcess:
    """One ``ekms serve`` subprocess. Its log (stdout and stderr) is appended to ``log`` across
    restarts; the HTTP, gRPC and metrics ports stay the same."""

    name: str
    env: dict[str, str]
    log: Path
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> EkmsProcess:
        env = {
            **self.env,
            "EKMS_HTTP_PORT": str(self.http_port),
            "EKMS_GRPC_PORT": str(self.grpc_port),
            "EKMS_METRICS_PORT": str(self.metrics_port),
        }
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts + 1} of {self.name}\n".encode())
            out.flush()
            self.process = subprocess.Popen(SERVE, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        self.wait_live(timeout)
        return self

    def wait_live(self, timeout: float) -> None:
        def live() -> bool:
            assert self.process is not None and self.process.poll() is None, self.tail()
            try:
                return httpx.get(self.url + "/livez", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        until(live, timeout, f"{self.name} to answer /livez")

    def wait_ready(self, timeout: float = 30.0) -> float:
        def ready() -> bool:
            try:
                return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        return until(ready, timeout, f"{self.name} to be ready", interval=0.1)

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    # -- REST --------------------------------------------------------------------------------

    def call(self, method: str, path: str, auth: str | None = None, **kw: Any) -> httpx.Response:
        headers = {**(bearer(auth) if auth else {}), **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def metrics(self) -> httpx.Response:
        """A scrape of the metrics listener (the public port answers /metrics 404)."""
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=30)


def ekms_env(database_url: str, kms_url: str, region: str, data_dir: Path, **extra: str) -> dict:
    """The environment of an ``ekms serve`` on Postgres and an AWS (moto) KMS."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "EKMS_DATABASE_URL": database_url,
        "EKMS_KMS_PROVIDER": "aws",
        "EKMS_AWS_ENDPOINT_URL": kms_url,
        "EKMS_ALLOW_INSECURE_KMS_ENDPOINT": "true",
        "EKMS_AWS_REGION": region,
        "EKMS_DATA_DIR": str(data_dir),
        "EKMS_JWT_HS256_SECRET": SECRET,
        "EKMS_AUDIT_FLUSH_SECONDS": "0.2",
        "EKMS_KMS_CONNECT_TIMEOUT_SECONDS": "1",
        "EKMS_KMS_READ_TIMEOUT_SECONDS": "3",
        "EKMS_LOG_LEVEL": "WARNING",
        # Console lines: the JSON renderer drops exception tracebacks (see docs/reliability.md).
        "EKMS_LOG_JSON": "false",
        **extra,
    }


@contextlib.contextmanager
def running_processes(*nodes: EkmsProcess) -> Iterator[tuple[EkmsProcess, ...]]:
    """Start the processes; always stop them (SIGTERM, then SIGKILL) on the way out."""
    try:
        for node in nodes:
            node.start()
        yield nodes
    except BaseException:
        for node in nodes:  # what the processes said, next to the failure
            print(f"--- last lines of {node.name} ({node.log}):\n{node.tail()}")
        raise
    finally:
        for node in nodes:
            node.stop()


# --- the admin side over REST -----------------------------------------------------------------

ADMIN_TOKEN = token("admin", *ADMIN_ROLES)


def admin_call_killed_after(
    node: EkmsProcess, send: Callable[[httpx.Client], httpx.Response], delay: float | None
) -> tuple[httpx.Response | None, float]:
    """``send`` an admin request to ``node`` (the client carries the admin token) and, after
    ``delay`` seconds (``None``: never), ``kill -9`` the node: its answer, or ``None`` when the
    kill cut it off, and how long the call took."""
    answered: list[httpx.Response] = []
    client = httpx.Client(
        base_url=node.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )

    def request() -> None:
        try:
            answered.append(send(client))
        except httpx.TransportError:
            pass  # killed mid-call

    started = time.perf_counter()
    worker = threading.Thread(target=request)
    worker.start()
    if delay is not None:
        time.sleep(delay)
        node.kill9()
    worker.join(timeout=60)
    took = time.perf_counter() - started
    client.close()
    return (answered[0] if answered else None), took


APP_TOKEN = token("svc", APP_ROLE)


def ok(response: httpx.Response, *codes: int) -> Any:
    assert response.status_code in (codes or (200, 201)), (response.status_code, response.text)
    return response.json() if response.content else None


def assert_audit_verifies(node: EkmsProcess) -> dict[str, Any]:
    """``GET /audit/verify``: the whole chain intact (no false alarm after a fault run)."""
    report: dict[str, Any] = ok(node.call("GET", "/api/v1/audit/verify", ADMIN_TOKEN))
    assert report["ok"] is True and report["first_break"] is None, report
    assert report["checked"] > 0, report
    print(f"audit verify: ok, {report['checked']} chained rows")
    return report


def configure(node: EkmsProcess, key_id: str) -> None:
    ok(
        node.call(
            "PUT", "/api/v1/ekms/config", ADMIN_TOKEN, json={"provider": "aws", "key_id": key_id}
        )
    )


def create_module(node: EkmsProcess, name: str, algorithm: str = "AES-256-GCM") -> None:
    ok(
        node.call(
            "POST", "/api/v1/modules", ADMIN_TOKEN, json={"name": name, "algorithm": algorithm}
        )
    )
    policy = {
        "target_type": "role",
        "target": APP_ROLE,
        "operations": ["encrypt", "decrypt", "rewrap"],
        "result": "track",
    }
    ok(node.call("POST", f"/api/v1/modules/{name}/policies", ADMIN_TOKEN, json=policy))


def encrypt(
    node: EkmsProcess, module: str, plaintext: bytes, context: bytes = b""
) -> httpx.Response:
    body = {"module": module, "plaintext": b64(plaintext), "context": b64(context)}
    return node.call("POST", "/api/v1/crypto/encrypt", APP_TOKEN, json=body)


def decrypt(
    node: EkmsProcess, module: str, ciphertext: str, context: bytes = b""
) -> httpx.Response:
    body = {"module": module, "ciphertext": ciphertext, "context": b64(context)}
    return node.call("POST", "/api/v1/crypto/decrypt", APP_TOKEN, json=body)


@dataclass(frozen=True)
class Sealed:
    module: str
    plaintext: bytes
    context: bytes
    ciphertext: str
    version: int


def seal(node: EkmsProcess, module: str, plaintext: bytes, context: bytes = b"") -> Sealed:
    body = ok(encrypt(node, module, plaintext, context))
    return Sealed(module, plaintext, context, body["ciphertext"], body["key_version"])


def opens(node: EkmsProcess, value: Sealed) -> httpx.Response:
    return decrypt(node, value.module, value.ciphertext, value.context)


# --- load ---------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    calls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    wrong: int = 0  # a 200 whose plaintext was not the one sealed
    latencies: list[float] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.outcomes["200"]

    def summary(self) -> str:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.outcomes.items()))
        p99 = percentile(self.latencies, 0.99) * 1000
        return f"{self.calls} calls ({parts}), {self.wrong} wrong plaintexts, p99 {p99:.1f} ms"


class DecryptLoad:
    """``workers`` threads decrypting known values on one process as fast as they can, each
    outcome counted as its status (and reason for errors). ``phase(name)`` starts a new report,
    so a test can tell the outcomes before, during and after a fault apart; a call counts in
    the phase it was sent in."""

    def __init__(self, node: EkmsProcess, values: list[Sealed], workers: int = 2) -> None:
        self.node = node
        self.values = values
        self.workers = workers
        self.reports: dict[str, LoadReport] = {}
        self._current = self._new("start")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)
        ]

    def _new(self, name: str) -> LoadReport:
        report = self.reports[name] = LoadReport()
        return report

    def phase(self, name: str) -> LoadReport:
        with self._lock:
            self._current = self._new(name)
            return self._current

    def __enter__(self) -> DecryptLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, worker: int) -> None:
        rng = random.Random(worker)  # noqa: S311 - picks test values, nothing secret
        with httpx.Client(base_url=self.node.url, headers=bearer(APP_TOKEN), timeout=10) as client:
            while not self._stop.is_set():
                value = rng.choice(self.values)
                body = {
                    "module": value.module,
                    "ciphertext": value.ciphertext,
                    "context": b64(value.context),
                }
                with self._lock:  # the phase the call was sent in, not the one it ended in
                    report = self._current
                started = time.perf_counter()
                try:
                    response = client.post("/api/v1/crypto/decrypt", json=body)
                except httpx.TransportError as exc:
                    outcome, good = type(exc).__name__, True
                    time.sleep(0.05)
                else:
                    outcome = str(response.status_code)
                    if response.status_code != 200:
                        outcome += " " + str(response.json().get("reason"))
                        good = True
                    else:
                        good = base64.b64decode(response.json()["plaintext"]) == value.plaintext
                elapsed = time.perf_counter() - started
                with self._lock:
                    report.calls += 1
                    report.outcomes[outcome] += 1
                    report.wrong += 0 if good else 1
                    report.latencies.append(elapsed)


# --- the database and the key chain, read directly ---------------------------------------------


def query(database_url: str, sql: str, *args: object) -> list[Any]:
    """Rows of one query on the real database (not through any proxy)."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def run() -> list[Any]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


@dataclass
class ChainCheck:
    modules: int
    versions: int
    unwrapped: int
    destroyed: int


def check_chain(
    database_url: str, kms_admin: Any, local_root_key: bytes | None = None
) -> ChainCheck:
    """The key chain as stored must be whole:

    - exactly one EKEK (KEK row), the active one: a KEK rotation deletes the previous row in its
      own transaction; it decrypts through the KMS with the EncryptionContext stored on the
      row, and the KEK it yields matches the stored fingerprint;
    - every module has exactly one Active version, and its versions are 1..n without a gap;
    - the active KEK unwraps every version that still has key material, and every such version
      names the active KEK; destroyed versions have none;
    - but a version of a module with ``external_wrap=false``: it names the local KEK (and no
      external one), which ``local_root_key`` unwraps, and which unwraps it. A module's
      versions with material are all under the KEK its flag says.
    """
    ekeks = query(database_url, "SELECT * FROM external_instance_keys WHERE active")
    assert len(ekeks) == 1, f"{len(ekeks)} active KEKs"
    stored = query(database_url, "SELECT id FROM external_instance_keys")
    assert len(stored) == 1, f"{len(stored)} KEK rows: a retired EKEK was kept"
    row = ekeks[0]
    context = row["encryption_context"]
    context = json.loads(context) if isinstance(context, str) else dict(context)
    raw = kms_admin.decrypt(CiphertextBlob=bytes(row["wrapped_kek"]), EncryptionContext=context)[
        "Plaintext"
    ]
    kek = KeyEncryptionKey(row["id"], raw)
    assert kek.fingerprint == row["fingerprint"], "the active KEK does not match its fingerprint"
    keys = query(database_url, "SELECT * FROM module_keys ORDER BY module_id, version")
    modules = {
        r["id"]: r["name"] for r in query(database_url, "SELECT id, name FROM crypto_modules")
    }
    external_wrap = {
        r["id"]: r["external_wrap"]
        for r in query(database_url, "SELECT id, external_wrap FROM crypto_modules")
    }
    local_kek = _local_kek(database_url, local_root_key)
    by_module: dict[uuid.UUID, list[Any]] = {m: [] for m in modules}
    for key in keys:
        by_module[key["module_id"]].append(key)
    unwrapped = destroyed = 0
    for module_id, versions in by_module.items():
        name = modules[module_id]
        active = [k["version"] for k in versions if k["state"] == "active"]
        assert len(active) == 1, f"module {name} has Active versions {active}"
        numbers = [k["version"] for k in versions]
        assert numbers == list(range(1, len(numbers) + 1)), f"module {name} versions {numbers}"
        for key in versions:
            if key["wrapped_dek"] is None:
                assert key["state"] == "destroyed", f"{name} v{key['version']} lost its key"
                destroyed += 1
                continue
            under = kek
            if not external_wrap[module_id]:
                assert local_kek is not None, f"{name} is local, and there is no local KEK"
                assert key["kek_id"] is None, f"{name} v{key['version']} names an external KEK"
                assert key["local_kek_id"] == local_kek.id, f"{name} v{key['version']} not local"
                under = local_kek
            else:
                assert key["local_kek_id"] is None, f"{name} v{key['version']} is local"
                assert key["kek_id"] == kek.id, f"{name} v{key['version']} is under an old KEK"
            under.unwrap(bytes(key["wrapped_dek"]), module_id, key["version"])
            unwrapped += 1
    return ChainCheck(len(by_module), len(keys), unwrapped, destroyed)


def _local_kek(database_url: str, local_root_key: bytes | None) -> KeyEncryptionKey | None:
    """The local KEK as the local root key unwraps it (None without a row or a root key)."""
    rows = query(database_url, "SELECT * FROM local_instance_keys")
    if not rows or local_root_key is None:
        return None
    row = rows[0]
    context = row["encryption_context"]
    context = json.loads(context) if isinstance(context, str) else dict(context)
    root = LocalKms(LOCAL_KEK_REF, local_root_key)
    raw = asyncio.run(root.unwrap(bytes(row["wrapped_kek"]), context))
    kek = KeyEncryptionKey(row["id"], raw)
    assert kek.fingerprint == row["fingerprint"], "the local KEK does not match its fingerprint"
    return kek


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ApiWorld:
    """A realistic configured instance for API-wide tests: two modules (GCM and SIV) with
    policies, two field configurations, a rotated key, and a few encrypted values."""

    MODULES = ("global.payroll", "global.lookup")

    def __init__(self, node: EkmsProcess) -> None:
        self.node = node
        self.values: list[Sealed] = []

    def build(self, key_id: str) -> ApiWorld:
        node = self.node
        configure(node, key_id)
        create_module(node, self.MODULES[0])
        create_module(node, self.MODULES[1], "AES-256-SIV")
        for table, column, module in (
            ("employees", "iban", self.MODULES[0]),
            ("employees", "email", self.MODULES[1]),
        ):
            body = {"table": table, "column": column, "module": module}
            ok(node.call("POST", "/api/v1/field-configs", ADMIN_TOKEN, json=body))
        ok(node.call("POST", f"/api/v1/modules/{self.MODULES[0]}/keys/rotate", ADMIN_TOKEN))
        for i, module in enumerate(self.MODULES * 3):
            self.values.append(seal(node, module, b"value %d" % i, b"record-%d" % i))
        return self
