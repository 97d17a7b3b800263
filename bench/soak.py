"""Soak: a steady mixed load on a real ``ekms serve`` for a set time; nothing may fail.

    scripts/soak --minutes 10                 (= uv run python -m bench.soak --minutes 10)
    scripts/soak --seconds 20 --output /tmp/soak.json

1. The system under test comes from ``bench.stack``: a fresh Postgres database, moto's KMS
   server, one ``ekms serve`` configured like production (a module with a Track policy for the
   app's role, a field configuration, audit on). A set of values is sealed for the decrypts.
2. Capacity: a separate load process drives the mix closed-loop (``--concurrency`` calls in
   flight) for ``--capacity-seconds`` and reports what it completed per second.
3. Steady: another load process holds an open-loop rate of ``--load-fraction`` (default half)
   of that capacity for the set time. The mix: 90% decrypt, 9% encrypt, 1% admin (half reads:
   the module's key versions and the status; half writes: the module's description, which makes
   every replica reload its key chain). Latency is measured from each call's scheduled instant,
   so queueing is counted (no coordinated omission).
4. Nothing may fail: every call must answer 2xx, and every decrypt must give back the value
   that was sealed (admin writes come from one administrator: they never race each other).
   Reported: latency from the scheduled instant and service time (sent to answered), overall
   and per kind, late dispatches, and a 10 s timeline (calls, p99 of both, the generator's CPU,
   the host's load average) to tell a slow server from a starved generator on a shared host.
   The server's RSS (``/proc/<pid>/status`` VmRSS) is sampled every second.
   A JSON summary goes to ``--output`` (default ``bench/results/soak-<UTC time>.json``); the
   exit status is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
ENCRYPT_SHARE = 0.09


def mix_for(admin_share: float) -> list[tuple[str, float]]:
    """90/9/1 by default: decrypts take what encrypts (9%) and admin calls leave."""
    half = admin_share / 2
    decrypt = 1.0 - ENCRYPT_SHARE - admin_share
    return [
        ("decrypt", decrypt),
        ("encrypt", ENCRYPT_SHARE),
        ("admin-read", half),
        ("admin-write", half),
    ]


_LE = re.compile(r'^ekms_http_request_seconds_bucket\{.*le="([^"]+)".*\} (\S+)$')


def server_buckets(metrics_url: str) -> dict[float, float]:
    """The server's own REST latency histogram (all routes), cumulative count per bound, from
    its metrics listener."""
    totals: dict[float, float] = {}
    for line in httpx.get(metrics_url, timeout=10).text.splitlines():
        match = _LE.match(line)
        if match:
            bound = float(match[1])
            totals[bound] = totals.get(bound, 0.0) + float(match[2])
    return totals


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> str:
    """The histogram bound under which a fraction ``q`` of the requests between two scrapes
    finished, e.g. "<= 10 ms" (Prometheus buckets: an upper bound, not an exact figure)."""
    bounds = sorted(after)
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    if total <= 0:
        return "n/a"
    for bound in bounds:
        if after[bound] - before.get(bound, 0.0) >= q * total:
            return "> 2.5 s" if bound == float("inf") else f"<= {bound * 1000:g} ms"
    return "n/a"


# --- the load process ----------------------------------------------------------------------------


@dataclass
class Tally:
    """Outcomes of the calls. ``latencies``: from each call's scheduled instant (closed loop:
    from when it was sent); ``service``: from when it was sent to its answer."""

    calls: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    service: list[float] = field(default_factory=list)
    late: int = 0

    def record(self, kind: str, seconds: float, service: float, failure: str | None) -> None:
        self.calls[kind] += 1
        self.latencies.setdefault(kind, []).append(seconds)
        self.service.append(service)
        if failure is not None:
            self.failures[kind] += 1
            if len(self.samples) < 20:
                self.samples.append(f"{kind}: {failure}")


class Timeline:
    """Per-window figures, to see when a stall happened and whether the server or the
    generator was behind."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.rows: list[dict[str, Any]] = []
        self._reset(0.0)

    def _reset(self, at: float) -> None:
        self._at, self._lat, self._svc, self._late, self._failed = at, [], [], 0, 0

    def add(self, latency: float, service: float, failed: bool) -> None:
        self._lat.append(latency)
        self._svc.append(service)
        self._failed += failed

    def late(self) -> None:
        self._late += 1

    def tick(self, now: float, process_cpu: float, *, final: bool = False) -> None:
        if now - self._at < self.window and not (final and self._lat):
            return
        self.rows.append(
            {
                "t_s": round(now, 1),
                "calls": len(self._lat),
                "failed": self._failed,
                "late_dispatches": self._late,
                "p99_ms": _percentiles(self._lat).get("p99_ms"),
                "service_p99_ms": _percentiles(self._svc).get("p99_ms"),
                "generator_cpu_s": round(process_cpu, 1),
                "load_avg_1m": os.getloadavg()[0],
            }
        )
        self._reset(now)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": at(1.0)}


class Mix:
    """One call of the mix at a time, checked."""

    def __init__(
        self,
        plan: dict[str, Any],
        client: httpx.AsyncClient,
        seed: int,
        one_admin: asyncio.Lock | None = None,
    ) -> None:
        self.plan = plan
        self.client = client
        self.rng = random.Random(seed)  # noqa: S311 - picks load, nothing secret
        self.app = {"Authorization": f"Bearer {plan['app_token']}"}
        self.admin = {"Authorization": f"Bearer {plan['admin_token']}"}
        self.writes = 0
        # One administrator: writes never race each other. Shared by every Mix of a run: the
        # closed loop gives each worker its own Mix, and per-Mix locks let two workers' PATCHes
        # race into a (correct) 409 CONCURRENT_UPDATE (seen in a CI run under load).
        self.one_admin = one_admin or asyncio.Lock()

    def pick(self) -> str:
        r, total = self.rng.random(), 0.0
        for kind, share in self.plan["mix"]:
            total += share
            if r < total:
                return kind
        return "decrypt"

    async def run(self, kind: str) -> str | None:
        """Do one call of ``kind``; None if it succeeded, else what went wrong."""
        try:
            return await getattr(self, kind.replace("-", "_"))()
        except httpx.HTTPError as exc:
            return type(exc).__name__

    async def decrypt(self) -> str | None:
        value = self.rng.choice(self.plan["values"])
        body = {**value["target"], "ciphertext": value["ciphertext"], "context": value["context"]}
        r = await self.client.post("/api/v1/crypto/decrypt", json=body, headers=self.app)
        if r.status_code != 200:
            return f"{r.status_code} {r.text[:200]}"
        if r.json()["plaintext"] != value["plaintext"]:
            return "a decrypt gave back another value"
        return None

    async def encrypt(self) -> str | None:
        value = self.rng.choice(self.plan["values"])
        body = {**value["target"], "plaintext": value["plaintext"], "context": value["context"]}
        r = await self.client.post("/api/v1/crypto/encrypt", json=body, headers=self.app)
        return None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"

    async def admin_read(self) -> str | None:
        path = self.rng.choice(
            [f"/api/v1/modules/{self.plan['module']}/keys", "/api/v1/ekms/status"]
        )
        r = await self.client.get(path, headers=self.admin)
        return None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"

    async def admin_write(self) -> str | None:
        async with self.one_admin:
            self.writes += 1
            r = await self.client.patch(
                f"/api/v1/modules/{self.plan['module']}",
                json={"description": f"soak write {self.writes}"},
                headers=self.admin,
            )
        return None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"


async def closed_loop(plan: dict[str, Any], seconds: float, concurrency: int) -> dict[str, Any]:
    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=plan["url"], limits=limits, timeout=30) as client:
        warm_until = time.monotonic() + min(2.0, seconds / 3)
        end = warm_until + seconds

        one_admin = asyncio.Lock()

        async def worker(n: int) -> None:
            mix = Mix(plan, client, seed=n, one_admin=one_admin)
            while (now := time.monotonic()) < end:
                kind = mix.pick()
                started = time.perf_counter()
                failure = await mix.run(kind)
                if now >= warm_until:
                    took = time.perf_counter() - started
                    tally.record(kind, took, took, failure)

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    completed = sum(tally.calls.values())
    return {
        "mode": "capacity",
        "seconds": seconds,
        "concurrency": concurrency,
        "calls": dict(tally.calls),
        "failures": dict(tally.failures),
        "failure_samples": tally.samples,
        "ops_per_second": round(completed / seconds, 1),
        "latency": _percentiles([x for v in tally.latencies.values() for x in v]),
    }


async def open_loop(plan: dict[str, Any], seconds: float, rate: float) -> dict[str, Any]:
    tally = Tally()
    timeline = Timeline(window=10.0)
    # In flight never exceeds the pool: a call waits in our dispatcher (counted as late), never
    # in httpx's pool queue, whose bookkeeping grows with its length and would starve the
    # generator itself once a backlog forms.
    limit = 64
    limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
    progress_every = 60.0
    async with httpx.AsyncClient(base_url=plan["url"], limits=limits, timeout=30) as client:
        mix = Mix(plan, client, seed=12345)
        in_flight = asyncio.Semaphore(limit)
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        cpu_start = time.process_time()
        next_progress = start + progress_every

        async def one(kind: str, scheduled: float) -> None:
            sent = time.perf_counter()
            try:
                failure = await mix.run(kind)
            finally:
                in_flight.release()
            done = time.perf_counter()
            tally.record(kind, done - scheduled, done - sent, failure)
            timeline.add(done - scheduled, done - sent, failure is not None)

        i = 0
        while True:
            scheduled = start + i / rate
            if scheduled - start >= seconds:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.05:
                tally.late += 1
                timeline.late()
            await in_flight.acquire()
            task = asyncio.create_task(one(mix.pick(), scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            now = time.perf_counter()
            timeline.tick(now - start, time.process_time() - cpu_start)
            if now >= next_progress:
                next_progress += progress_every
                print(
                    f"soak: {scheduled - start:.0f} s, {sum(tally.calls.values())} calls, "
                    f"{sum(tally.failures.values())} failed, last 10 s: "
                    f"{timeline.rows[-1] if timeline.rows else {}}",
                    file=sys.stderr,
                    flush=True,
                )
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        timeline.tick(elapsed, time.process_time() - cpu_start, final=True)
    every = [x for v in tally.latencies.values() for x in v]
    return {
        "mode": "steady",
        "seconds": round(elapsed, 1),
        "target_rate": round(rate, 1),
        "achieved_rate": round(sum(tally.calls.values()) / elapsed, 1),
        "calls": dict(tally.calls),
        "failures": dict(tally.failures),
        "failure_samples": tally.samples,
        "late_dispatches": tally.late,
        "latency": _percentiles(every),
        "service_latency": _percentiles(tally.service),
        "latency_by_kind": {k: _percentiles(v) for k, v in sorted(tally.latencies.items())},
        "generator_cpu_seconds": round(time.process_time() - cpu_start, 1),
        "timeline": timeline.rows,
    }


def load_main(args: argparse.Namespace) -> int:
    plan = json.loads(Path(args.plan).read_text())
    if args.mode == "capacity":
        result = asyncio.run(closed_loop(plan, args.seconds, args.concurrency))
    else:
        result = asyncio.run(open_loop(plan, args.seconds, args.rate))
    Path(args.result).write_text(json.dumps(result, indent=2))
    return 0


# --- the orchestrator ----------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class ServerSampler:
    """In a thread: the server's VmRSS every ``interval`` seconds, and every ``window`` seconds
    its own REST latency histogram (the time inside the app, as the server measures it)."""

    def __init__(
        self, pid: int, metrics_url: str, interval: float = 1.0, window: float = 10.0
    ) -> None:
        self.pid, self.url, self.interval, self.window = pid, metrics_url, interval, window
        self.samples: list[tuple[float, int]] = []
        self.server_windows: list[dict[str, Any]] = []
        self.first: dict[float, float] = {}
        self.last: dict[float, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _scrape(self, at: float) -> None:
        try:
            buckets = server_buckets(self.url)
        except httpx.HTTPError:
            return
        if self.last:
            count = buckets.get(float("inf"), 0.0) - self.last.get(float("inf"), 0.0)
            self.server_windows.append(
                {
                    "t_s": at,
                    "requests": int(count),
                    "p99": bucket_quantile(self.last, buckets, 0.99),
                }
            )
        else:
            self.first = buckets
        self.last = buckets

    def _run(self) -> None:
        started = time.monotonic()
        next_scrape = started
        while not self._stop.is_set():
            now = time.monotonic()
            self.samples.append((round(now - started, 1), rss_kib(self.pid)))
            if now >= next_scrape:
                self._scrape(round(now - started, 1))
                next_scrape += self.window
            self._stop.wait(self.interval)

    def __enter__(self) -> ServerSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.samples.append((self.samples[-1][0] if self.samples else 0.0, rss_kib(self.pid)))
        self._scrape(self.samples[-1][0])

    def server_p99(self) -> str:
        return bucket_quantile(self.first, self.last, 0.99)


def run_load(workdir: Path, plan: Path, mode: str, seconds: float, **options: float) -> dict:
    result = workdir / f"load-{mode}.json"
    command = [sys.executable, "-m", "bench.soak", "--load", mode, "--plan", str(plan)]
    command += ["--seconds", str(seconds), "--result", str(result)]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    subprocess.run(command, cwd=ROOT, check=True, timeout=seconds + 300)  # noqa: S603
    return dict(json.loads(result.read_text()))


def seal_values(server_url: str, app_token: str, target: dict[str, str], count: int) -> list[dict]:
    values = []
    with httpx.Client(base_url=server_url, timeout=30) as client:
        for n in range(count):
            plaintext = base64.b64encode(os.urandom(24)).decode()
            context = base64.b64encode(b"record-%d" % n).decode()
            body = {**target, "plaintext": plaintext, "context": context}
            r = client.post(
                "/api/v1/crypto/encrypt",
                json=body,
                headers={"Authorization": f"Bearer {app_token}"},
            )
            r.raise_for_status()
            values.append(
                {
                    "target": target,
                    "plaintext": plaintext,
                    "context": context,
                    "ciphertext": r.json()["ciphertext"],
                }
            )
    return values


def orchestrate(args: argparse.Namespace) -> int:
    from bench import stack

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access lines

    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    output = (
        Path(args.output)
        if args.output
        else (ROOT / "bench" / "results" / f"soak-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json")
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    workdir = output.parent / (output.stem + "-work")
    workdir.mkdir(exist_ok=True)
    print(f"soak: {seconds:.0f} s of steady load; work files in {workdir}", flush=True)
    with stack.bench_database() as database_url, stack.moto_kms() as (kms_url, key_id):
        server = stack.start_server(
            database_url=database_url,
            kms_url=kms_url,
            log=workdir / "ekms.log",
            extra={"EKMS_BENCH_ECHO": "false", "EKMS_LOG_LEVEL": "WARNING"},
        )
        try:
            stack.configure(server, key_id)
            app_token = stack.token("soak-app", stack.APP_ROLE)
            admin_token = stack.token(
                "soak-admin", "ekms.admin", "ekms.key_manager", "ekms.auditor"
            )
            field_target = {"table": stack.TABLE, "column": stack.COLUMN}
            plan = {
                "url": server.url,
                "app_token": app_token,
                "admin_token": admin_token,
                "module": stack.MODULE,
                "mix": mix_for(args.admin_share),
                "values": seal_values(server.url, app_token, field_target, 200)
                + seal_values(server.url, app_token, {"module": stack.MODULE}, 56),
            }
            plan_file = workdir / "plan.json"
            plan_file.write_text(json.dumps(plan))
            pid = server.process.pid
            rss_boot = rss_kib(pid)
            capacity = run_load(
                workdir, plan_file, "capacity", args.capacity_seconds, concurrency=args.concurrency
            )
            rate = max(1.0, capacity["ops_per_second"] * args.load_fraction)
            print(
                f"soak: capacity {capacity['ops_per_second']} ops/s "
                f"({args.concurrency} in flight); steady rate {rate:.0f} ops/s",
                flush=True,
            )
            cpu_before = server.cpu()
            with ServerSampler(pid, server.metrics_url) as rss:
                steady = run_load(workdir, plan_file, "steady", seconds, rate=rate)
            cpu_steady = server.cpu() - cpu_before
            alive = server.process.poll() is None
        finally:
            server.stop()
    failures = sum(capacity["failures"].values()) + sum(steady["failures"].values())
    summary = {
        "started_at": datetime.now(UTC).isoformat(),
        "host": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "steady_seconds": seconds,
        "capacity": capacity,
        "steady": steady,
        "server": {
            "alive_at_end": alive,
            "rss_kib_boot": rss_boot,
            "rss_kib_start": rss.samples[0][1],
            "rss_kib_end": rss.samples[-1][1],
            "rss_kib_max": max(v for _, v in rss.samples),
            "rss_samples": rss.samples[:: max(1, len(rss.samples) // 120)],
            "cpu_seconds_steady": round(cpu_steady, 1),
            "rest_latency_p99": rss.server_p99(),
            "rest_latency_windows": rss.server_windows,
        },
        "failures": failures,
        "ok": failures == 0 and alive,
    }
    output.write_text(json.dumps(summary, indent=2))
    lat, svc = steady["latency"], steady["service_latency"]
    print(
        f"soak: {sum(steady['calls'].values())} calls in {steady['seconds']} s at "
        f"{steady['achieved_rate']} ops/s (target {steady['target_rate']}), "
        f"{failures} failed; from schedule p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} "
        f"ms, max {lat.get('max_ms')} ms; service time p99 {svc.get('p99_ms')} ms; "
        f"in the server p99 {summary['server']['rest_latency_p99']}; "
        f"{steady['late_dispatches']} late dispatches; RSS {summary['server']['rss_kib_start']} -> "
        f"{summary['server']['rss_kib_end']} KiB (max {summary['server']['rss_kib_max']}); "
        f"summary {output}",
        flush=True,
    )
    for sample in steady["failure_samples"] + capacity["failure_samples"]:
        print(f"soak: FAILED {sample}", flush=True)
    return 0 if summary["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="steady phase (default 10)")
    parser.add_argument("--seconds", type=float, help="steady phase in seconds (overrides)")
    parser.add_argument("--output", help="the JSON summary (default bench/results/soak-*.json)")
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (capacity)")
    parser.add_argument("--load-fraction", type=float, default=0.5, help="of the capacity")
    parser.add_argument(
        "--admin-share", type=float, default=0.01, help="admin calls, half reads half writes"
    )
    # The load process (run by the orchestrator).
    parser.add_argument("--load", choices=["capacity", "steady"], help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        args.mode = args.load
        return load_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
