"""The ekms benchmark: one command, one run, every figure as a ratio measured within that run.

    uv run python -m bench.run            # full run (~3-4 minutes), bench/results/
    uv run python -m bench.run --quick    # a tiny run (tests/bench uses it)
    uv run python -m bench.run --only grpc.encrypt.64,grpc.encrypt_batch --no-scaling
                                          # some cases only (names or prefixes)

Starts a fresh Postgres database (``ekms migrate``), moto's KMS server and two real
``ekms serve`` subprocesses on it: one with one worker, one with ``--workers 2`` (auth, access
policies and audit on as in production, plus ``EKMS_BENCH_ECHO=true``). Configures them over
REST, then drives each case from separate client processes on loopback (see ``bench.load``)
while reading the server's CPU time from /proc and its KMS-call and DB-statement counters from
its metrics listener. The in-process ceilings (raw AES-GCM, the AWS Encryption SDK) run in this
process before any server starts.

The host is shared and noisy, so every case runs in ``rounds`` short windows, the cases
interleaved round after round (the 1- and 2-worker servers alternate): a burst of someone
else's load hits one window of several cases rather than every window of one. Per case the
best round's throughput is reported (other load can only slow a run down) along with the
median, and medians of everything else; ``other_cores`` says how busy the rest of the machine
was. Writes ``results.json`` and ``results.png``.

Audit modes: a third server (one worker, ``EKMS_AUDIT_MODE=strict``, on the same database)
runs the ``STRICT`` cases right after the same case on the buffered 1-worker server, as
``<case>@strict``; ``report.ratios`` gives ``strict_vs_buffered`` (``--no-strict`` skips it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from bench import cases, inproc, report
from bench.load import READY, Outcome, Spec, worker_main
from bench.stack import (
    APP_ROLE,
    Server,
    bench_database,
    configure,
    machine_busy_seconds,
    moto_kms,
    runq_wait_seconds,
    start_server,
    token,
)

ROOT = Path(__file__).resolve().parents[1]
QUIET_CORES = 0.25  # a round is "quiet" when everything else on the host used less than this
DEFAULT_OUT = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Plan:
    seconds: float  # measured window per case and round
    warmup: float  # load before the window opens
    rounds: int
    clients: int  # client processes
    inproc_seconds: float
    idle_seconds: float
    batch_items: int = cases.BATCH_ITEMS
    group_items: int = cases.GROUP_ITEMS


FULL = Plan(seconds=1.2, warmup=0.5, rounds=5, clients=2, inproc_seconds=1.0, idle_seconds=3.0)
# How long a client may take to open its connections (a bound for a hang, not a speed: each
# channel's own wait is 10 s).
CONNECT_SECONDS = 90.0
QUICK = Plan(seconds=0.3, warmup=0.3, rounds=1, clients=1, inproc_seconds=0.05, idle_seconds=0.3)


@dataclass(frozen=True)
class Case:
    name: str
    group: str  # echo | unary | batch | stream | rest | half_load
    workload: cases.Workload
    concurrency: int  # per client process
    channels: int = 8  # connections per client process: spread over --workers by the kernel
    window: int = 256
    rate: float | None = None  # open loop, whole run (split over the clients)


class Clients:
    """A few long-lived client processes."""

    def __init__(self, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)

    def __len__(self) -> int:
        return len(self._conns)

    def start(self, specs: list[Spec], warmup: float, seconds: float) -> tuple[float, float]:
        """Hand each client its spec, wait until every one is connected, then open the window
        ``warmup`` from now: ``(start_at, end_at)``. A client that failed before it was ready
        has already sent its outcome; ``receive`` returns it."""
        self._early: dict[int, Outcome] = {}
        for conn, spec in zip(self._conns, specs, strict=True):
            conn.send(spec)
        for i, conn in enumerate(self._conns):
            message = self._next(conn, CONNECT_SECONDS)
            if message != READY:
                self._early[i] = message
        start_at = time.monotonic() + warmup
        window = (start_at, start_at + seconds)
        for i, conn in enumerate(self._conns):
            if i not in self._early:
                conn.send(window)
        return window

    def receive(self, timeout: float) -> list[Outcome]:
        return [
            self._early.pop(i) if i in self._early else self._next(conn, timeout)
            for i, conn in enumerate(self._conns)
        ]

    @staticmethod
    def _next(conn: Connection, timeout: float) -> Any:
        if not conn.poll(timeout):
            raise RuntimeError("a client process did not report back")
        return conn.recv()

    def close(self) -> None:
        for conn in self._conns:
            conn.send(None)
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def _sleep_until(instant: float) -> None:
    time.sleep(max(instant - time.monotonic(), 0.0))


def run_case(
    server: Server, clients: Clients, case: Case, plan: Plan, app_token: str
) -> dict[str, Any]:
    w = case.workload
    base = Spec(
        case=case.name,
        kind=w.kind,
        start_at=0.0,  # Clients.start sets the window once every client is connected
        end_at=0.0,
        target=server.grpc_target if w.kind != "rest" else f"127.0.0.1:{server.http_port}",
        method=w.method,
        requests=w.requests,
        response_type=w.response_type,
        fields_per_op=w.fields_per_op,
        concurrency=case.concurrency,
        channels=case.channels,
        window=case.window,
        rate=case.rate / len(clients) if case.rate else None,
        token=app_token,
    )
    start_at, end_at = clients.start(
        [replace(base) for _ in range(len(clients))], plan.warmup, plan.seconds
    )
    _sleep_until(start_at)
    exact_counters = server.workers == 1
    before = server.counters() if exact_counters else {}
    cpu0, per_pid0 = server.cpu(), {pid: server_cpu_of(pid) for pid in server.pids}
    busy0, own0 = machine_busy_seconds(), time.process_time()
    wait0 = runq_wait_seconds(server.pids[-1])  # the (last) worker's event-loop thread
    _sleep_until(end_at)
    wait1 = runq_wait_seconds(server.pids[-1])
    busy1, own1 = machine_busy_seconds(), time.process_time()
    cpu1, per_pid1 = server.cpu(), {pid: server_cpu_of(pid) for pid in server.pids}
    after = server.counters() if exact_counters else {}
    outcomes = clients.receive(timeout=plan.warmup + plan.seconds + 60)
    summary = summarize(
        case, plan, server, outcomes, cpu1 - cpu0, before, after, per_pid0, per_pid1
    )
    # Whatever else ran on the machine meanwhile (other users of a shared host): the noise.
    others = (busy1 - busy0) - (cpu1 - cpu0) - (own1 - own0)
    summary["other_cores"] = others / plan.seconds - summary["client_cpu_cores"]
    summary["loadavg_1m"] = os.getloadavg()[0]
    # Waiting for a core: the server's event-loop thread, and the clients' (milliseconds per
    # second of window; what a latency cannot be shorter than on a busy host).
    summary["server_loop_runq_ms_per_s"] = (wait1 - wait0) / plan.seconds * 1000
    summary["client_loop_runq_ms_per_s"] = (
        sum(o.runq_wait_seconds for o in outcomes) / len(outcomes) / plan.seconds * 1000
    )
    return summary


def server_cpu_of(pid: int) -> float:
    from bench.stack import cpu_seconds

    return cpu_seconds([pid])


def summarize(
    case: Case,
    plan: Plan,
    server: Server,
    outcomes: list[Outcome],
    server_cpu: float,
    before: dict[str, float],
    after: dict[str, float],
    per_pid0: dict[int, float],
    per_pid1: dict[int, float],
) -> dict[str, Any]:
    window = plan.seconds
    ops = sum(o.ops for o in outcomes)
    fields = sum(o.fields for o in outcomes)
    lat = np.concatenate([np.frombuffer(o.latencies, dtype=np.float64) for o in outcomes])
    p50, p99 = (np.percentile(lat, [50, 99]) * 1000).tolist() if lat.size else (0.0, 0.0)
    client_cpu = sum(o.client_cpu_seconds for o in outcomes)
    errors = sum(o.errors for o in outcomes)
    kms = db = None
    if after:
        kms = after["ekms_kms_calls_total"] - before["ekms_kms_calls_total"]
        db = after["ekms_db_queries_total"] - before["ekms_db_queries_total"]
    per_field = server_cpu / fields * 1e6 if fields else None
    gc = {
        name: after[name] - before[name] if after and name in after else None
        for name in ("gc_collections", "gc_pause_s", "gc_full", "gc_over_1ms")
    }
    return {
        "case": case.name,
        "group": case.group,
        "workers": server.workers,
        "kind": case.workload.kind,
        "fields_per_op": case.workload.fields_per_op,
        "concurrency": case.concurrency * len(outcomes),
        "client_processes": len(outcomes),
        "rate_target": case.rate,
        "window_s": window,
        "ops": ops,
        "fields": fields,
        "ops_per_s": ops / window,
        "fields_per_s": fields / window,
        "p50_ms": p50,
        "p99_ms": p99,
        "server_cpu_s": server_cpu,
        "server_cores": server_cpu / window,
        "server_cpu_us_per_op": server_cpu / ops * 1e6 if ops else None,
        "server_cpu_us_per_field": per_field,
        "server_cpu_split": [
            round(per_pid1.get(pid, 0.0) - per_pid0.get(pid, 0.0), 3) for pid in server.pids
        ],
        "client_cpu_cores": client_cpu / window,
        "kms_calls": kms,
        "db_queries": db,
        "kms_calls_per_1k_fields": kms / fields * 1000 if kms is not None and fields else None,
        "db_queries_per_1k_fields": db / fields * 1000 if db is not None and fields else None,
        "db_queries_per_s": db / window if db is not None else None,
        **gc,
        "errors": errors,
        "first_error": next((o.first_error for o in outcomes if o.first_error), None),
        "late_clients": sum(o.late for o in outcomes),
    }


def aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One case over its rounds: best and median throughput, medians of the rest, sums of
    the counters."""
    first = rounds[0]
    out = {k: first[k] for k in ("case", "group", "workers", "kind", "fields_per_op")}
    out.update(
        {k: first[k] for k in ("concurrency", "client_processes", "rate_target", "window_s")}
    )
    out["rounds"] = len(rounds)
    for name in ("ops_per_s", "fields_per_s"):
        values = [r[name] for r in rounds]
        out[name] = max(values)
        out[f"{name}_median"] = float(np.median(values))
    for name in (
        "p50_ms",
        "p99_ms",
        "server_cores",
        "server_cpu_us_per_op",
        "server_cpu_us_per_field",
        "client_cpu_cores",
        "other_cores",
        "loadavg_1m",
        "server_loop_runq_ms_per_s",
        "client_loop_runq_ms_per_s",
    ):
        values = [r[name] for r in rounds if r[name] is not None]
        out[name] = float(np.median(values)) if values else None
    out["ops"] = sum(r["ops"] for r in rounds)
    out["fields"] = sum(r["fields"] for r in rounds)
    counted = [r for r in rounds if r["kms_calls"] is not None]
    kms = sum(r["kms_calls"] for r in counted) if counted else None
    db = sum(r["db_queries"] for r in counted) if counted else None
    fields = sum(r["fields"] for r in counted)
    seconds = sum(r["window_s"] for r in counted)
    out["kms_calls"] = kms
    out["db_queries"] = db
    out["kms_calls_per_1k_fields"] = kms / fields * 1000 if kms is not None and fields else None
    out["db_queries_per_1k_fields"] = db / fields * 1000 if db is not None and fields else None
    out["db_queries_per_s"] = db / seconds if db is not None and seconds else None
    for name in ("gc_collections", "gc_pause_s", "gc_full", "gc_over_1ms"):  # per second
        values = [r[name] for r in counted if r.get(name) is not None]
        out[f"{name}_per_s"] = sum(values) / seconds if values and seconds else None
    out["errors"] = sum(r["errors"] for r in rounds)
    out["first_error"] = next((r["first_error"] for r in rounds if r["first_error"]), None)
    out["late_clients"] = sum(r["late_clients"] for r in rounds)
    out["server_cpu_split"] = rounds[-1]["server_cpu_split"]
    keep = (
        "ops_per_s",
        "p99_ms",
        "server_cores",
        "server_cpu_us_per_field",
        "other_cores",
        "server_loop_runq_ms_per_s",
        "client_loop_runq_ms_per_s",
        "gc_full",
        "gc_over_1ms",
    )
    out["per_round"] = [{k: r[k] for k in keep} for r in rounds]
    # The rounds during which the rest of the machine was nearly idle, if any.
    quiet = [r for r in rounds if r["other_cores"] < QUIET_CORES]
    out["quiet_rounds"] = len(quiet)
    for name in ("ops_per_s", "server_cpu_us_per_field", "p99_ms"):
        values = [r[name] for r in quiet if r[name] is not None]
        out[f"{name}_quiet"] = float(np.median(values)) if values else None
    return out


def idle_window(server: Server, seconds: float) -> dict[str, Any]:
    """Background activity with no load: health checks, scheduler, change-feed reconcile."""
    before, cpu0 = server.counters(), server.cpu()
    time.sleep(seconds)
    after, cpu1 = server.counters(), server.cpu()
    return {
        "window_s": seconds,
        "server_cores": (cpu1 - cpu0) / seconds,
        "db_queries_per_s": (after["ekms_db_queries_total"] - before["ekms_db_queries_total"])
        / seconds,
        "kms_calls_per_s": (after["ekms_kms_calls_total"] - before["ekms_kms_calls_total"])
        / seconds,
    }


def _cases(
    sealed64: list[tuple[bytes, bytes]], sealed1k: list[tuple[bytes, bytes]], plan: Plan
) -> list[Case]:
    n, g = plan.batch_items, plan.group_items
    return [
        Case("grpc.echo.64", "echo", cases.echo(64), 32),
        Case("grpc.encrypt.64", "unary", cases.encrypt(64), 32),
        Case("grpc.decrypt.64", "unary", cases.decrypt(sealed64), 32),
        Case("grpc.encrypt.1024", "unary", cases.encrypt(1024), 32),
        Case("grpc.decrypt.1024", "unary", cases.decrypt(sealed1k), 32),
        Case("grpc.data_key", "unary", cases.data_key(), 32),
        Case(f"grpc.encrypt_batch.{n}x64", "batch", cases.encrypt_batch(64, n), 4, channels=2),
        Case(
            f"grpc.decrypt_batch.{n}x64", "batch", cases.decrypt_batch(sealed64, n), 4, channels=2
        ),
        Case("grpc.echo_stream.64", "echo_stream", cases.echo_stream(64), 2, channels=2),
        Case("grpc.encrypt_stream.64", "stream", cases.encrypt_stream(64), 2, channels=2),
        Case("grpc.decrypt_stream.64", "stream", cases.decrypt_stream(sealed64), 2, channels=2),
        Case(
            f"grpc.encrypt_stream.{g}x64",
            "stream",
            cases.encrypt_stream_groups(64, g),
            2,
            channels=2,
            window=8,
        ),
        Case(
            f"grpc.decrypt_stream.{g}x64",
            "stream",
            cases.decrypt_stream_groups(sealed64, g),
            2,
            channels=2,
            window=8,
        ),
        Case("rest.encrypt.64", "rest", cases.rest_encrypt(64), 16),
        Case("rest.decrypt.64", "rest", cases.rest_decrypt(sealed64), 16),
    ]


SCALING = ("grpc.echo.64", "grpc.encrypt.64", "grpc.decrypt.64")
# Run on the strict-audit server too (a batch case by prefix: its name carries the item count).
STRICT = ("grpc.encrypt.64", "grpc.encrypt_batch.", "rest.encrypt.64")


def _named(name: str, names: tuple[str, ...]) -> bool:
    """``name`` is one of ``names``, or starts with one that ends in a dot."""
    return any(name == n or (n.endswith(".") and name.startswith(n)) for n in names)


def _selected(name: str, only: list[str] | None) -> bool:
    """``--only``: case names or prefixes (repeated or comma-separated); none: every case."""
    parts = [part for item in only or () for part in item.split(",") if part]
    return not parts or name.startswith(tuple(parts))


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import grpc

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
        "git_commit": commit,
        "load_average_at_start": os.getloadavg(),
    }


def _warm_rest(server: Server, app_token: str) -> None:
    """A few REST encrypts, so a server's first REST request (lazy imports, caches) is not
    inside a measured window: the strict server serves no REST before its case otherwise."""
    import httpx

    workload = cases.rest_encrypt(64)
    headers = {"Authorization": f"Bearer {app_token}", "Content-Type": "application/json"}
    for body in workload.requests[:3]:
        httpx.post(
            server.url + workload.method, content=body, headers=headers, timeout=60
        ).raise_for_status()


def _drive(
    args: argparse.Namespace,
    plan: Plan,
    results: dict[str, Any],
    rounds: dict[tuple[str, int], list[dict[str, Any]]],
    servers: list[Server],
    database_url: str,
    kms_url: str,
    kms_key: str,
    log: Any,
    clients: Clients,
    app_token: str,
    server_log: Path,
) -> None:
    log("starting ekms serve (1 worker)")
    one = start_server(database_url=database_url, kms_url=kms_url, log=server_log)
    servers.append(one)
    configure(one, kms_key)
    variant: Server | None = None
    if args.ab:
        log(f"starting ekms serve (1 worker) with {' '.join(args.ab)} (B)")
        extra = dict(pair.split("=", 1) for pair in args.ab)
        variant = start_server(
            database_url=database_url, kms_url=kms_url, log=server_log, extra=extra
        )
        servers.append(variant)
        results["ab"] = {"B": extra}
    two = strict = None
    if not args.no_scaling:
        log("starting ekms serve --workers 2")
        two = start_server(database_url=database_url, kms_url=kms_url, log=server_log, workers=2)
        servers.append(two)
    if not args.no_strict:
        log("starting ekms serve (1 worker, EKMS_AUDIT_MODE=strict)")
        strict = start_server(
            database_url=database_url,
            kms_url=kms_url,
            log=server_log,
            extra={"EKMS_AUDIT_MODE": "strict"},
        )
        servers.append(strict)
    sealed64 = cases.seal_pool(one.grpc_target, app_token, 64, plan.batch_items)
    sealed1k = cases.seal_pool(one.grpc_target, app_token, 1024, cases.POOL)
    for server in (one, strict):
        if server is not None:
            _warm_rest(server, app_token)
    results["idle"] = idle_window(one, plan.idle_seconds)
    all_cases = [c for c in _cases(sealed64, sealed1k, plan) if _selected(c.name, args.only)]
    # The scaling cases run on the 2-worker server, the strict ones on the strict-audit server,
    # right after the same case on the 1-worker one; with --ab, the single calls run on server
    # B right after server A.
    schedule: list[tuple[Case, Server]] = []
    for case in all_cases:
        schedule.append((case, one))
        if variant is not None and case.group in ("echo", "unary"):
            schedule.append((_as_b(case), variant))
        if two is not None and case.name in SCALING:
            schedule.append((case, two))
        if strict is not None and _named(case.name, STRICT):
            schedule.append((replace(case, name=f"{case.name}@strict", group="strict"), strict))
    for number in range(plan.rounds):
        log(f"round {number + 1}/{plan.rounds}: {len(schedule)} cases")
        for case, server in schedule:
            summary = run_case(server, clients, case, plan, app_token)
            rounds.setdefault((case.name, server.workers), []).append(summary)
    halves = []
    for name in ("grpc.encrypt.64", "grpc.decrypt.64"):
        base = next((c for c in all_cases if c.name == name), None)
        if base is None:  # left out by --only
            continue
        # Half of the typical (median) maximum: the best round may have been a quiet moment.
        rate = float(np.median([r["ops_per_s"] for r in rounds[(name, 1)]])) * 0.5
        half = replace(base, name=f"{name}@50%", group="half_load", rate=rate, concurrency=64)
        halves.append((half, one))
        if variant is not None:  # B at the same rate as A
            halves.append((_as_b(half), variant))
    log("half load: " + ", ".join(f"{h.name} {h.rate:.0f}/s" for h, _ in halves))
    for _ in range(plan.rounds):
        for half, server in halves:
            summary = run_case(server, clients, half, plan, app_token)
            rounds.setdefault((half.name, 1), []).append(summary)


def _as_b(case: Case) -> Case:
    """The same case on the --ab server: its name ends in ``[B]``."""
    return replace(case, name=f"{case.name}[B]")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="ekms benchmark")
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--seconds", type=float, help="measured window per case and round")
    parser.add_argument("--rounds", type=int, help="windows per case")
    parser.add_argument("--clients", type=int, help="client processes")
    parser.add_argument("--no-scaling", action="store_true", help="skip the --workers 2 server")
    parser.add_argument(
        "--only",
        action="append",
        metavar="PREFIX",
        help="run only the cases whose name starts with PREFIX (repeatable or comma-separated), "
        "e.g. "
        "--only grpc.echo.64 --only grpc.encrypt.64 --only grpc.decrypt.64 for the unary "
        "figures and the half-load p99",
    )
    parser.add_argument(
        "--ab",
        action="append",
        metavar="EKMS_NAME=VALUE",
        help="also start a 1-worker server B with this setting (repeatable) and run the "
        "single calls and the half-load cases on it right after server A, at the same rates "
        "(cases named '...[B]'), e.g. --ab EKMS_GC_FREEZE=false",
    )
    parser.add_argument("--no-strict", action="store_true", help="skip the strict-audit server")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.seconds:
        plan = replace(plan, seconds=args.seconds)
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    if args.clients:
        plan = replace(plan, clients=args.clients)
    if args.quick:
        plan = replace(plan, batch_items=100, group_items=20)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    command = "uv run python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict[str, Any] = {
        "command": command.strip(),
        "machine": machine(),
        "plan": plan.__dict__,
        "cases": [],
    }

    def log(message: str) -> None:
        print(f"[bench {time.time() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    log("in-process ceilings (raw AES-GCM, AWS Encryption SDK)")
    inproc_results = inproc.run_all(plan.inproc_seconds)
    results["inproc"] = [
        {
            "case": r.case,
            "ops_per_s": r.ops_per_s,
            "cpu_us_per_op": r.cpu_us_per_op,
            "p50_ms": inproc.percentiles(r.latencies)[0] * 1000,
            "p99_ms": inproc.percentiles(r.latencies)[1] * 1000,
        }
        for r in inproc_results
    ]
    app_token = token("bench-app", APP_ROLE)
    clients = Clients(plan.clients)
    server_log = out / "server.log"
    server_log.unlink(missing_ok=True)
    rounds: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        with bench_database() as database_url, moto_kms() as (kms_url, kms_key):
            servers: list[Server] = []
            try:
                _drive(
                    args,
                    plan,
                    results,
                    rounds,
                    servers,
                    database_url,
                    kms_url,
                    kms_key,
                    log,
                    clients,
                    app_token,
                    server_log,
                )
            finally:
                for server in servers:
                    server.stop()
    finally:
        clients.close()
    results["cases"] = [aggregate(r) for r in rounds.values()]
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)
    results["elapsed_s"] = time.time() - started
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report.chart(results, out / "results.png")
    print(report.text(results))
    log(f"wrote {out / 'results.json'} and {out / 'results.png'}")
    return results


if __name__ == "__main__":
    main()
