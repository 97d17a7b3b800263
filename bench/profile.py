"""Profile the hot path with pyinstrument, in-process, under the bench's load.

    uv run python -m bench.profile                        # every case below
    uv run python -m bench.profile grpc.decrypt_batch     # one (prefix match)
    uv run python -m bench.profile grpc.decrypt_batch --py-spy   # sampled by py-spy instead

The server runs in *this* process (``app.server.serve`` on uvloop, Postgres + moto, the same
settings as the bench); the load comes from a bench client process (``bench.load``). For each
case the profiler samples the event loop's thread during the measured window only. A last
"case" profiles ``CryptoService.decrypt_batch`` / ``encrypt_batch`` called directly (no gRPC).
Text profiles go to ``bench/results/profile-<case>.txt``. With ``--py-spy`` the window is
sampled from outside by py-spy (``uvx py-spy``, or ``py-spy`` on PATH; the Python threads
while busy, without pausing the sampled process; C code is charged to the Python frame that
called it, and grpc's own C threads are not seen) instead of pyinstrument, and the text is a
summary of its collapsed stacks: the share of samples under a few functions of the batch path
and the leaf frames that took the most.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

from bench import cases
from bench.load import Spec
from bench.run import DEFAULT_OUT, Clients
from bench.stack import (
    APP_ROLE,
    AWS_ENV,
    JWT_SECRET,
    Server,
    bench_database,
    configure,
    free_port,
    moto_kms,
    token,
)

SECONDS = 3.0


def _settings(database_url: str, kms_url: str, data_dir: Path, http: int, grpc_port: int) -> Any:
    from app.infra.settings import Settings

    return Settings(
        database_url=database_url,
        kms_provider="aws",
        aws_endpoint_url=kms_url,
        allow_insecure_kms_endpoint=True,
        aws_region=AWS_ENV["AWS_DEFAULT_REGION"],
        jwt_hs256_secret=JWT_SECRET,  # type: ignore[arg-type]
        http_port=http,
        grpc_port=grpc_port,
        metrics_port=0,  # the profile reads no metrics; an ephemeral port never collides
        data_dir=data_dir,
        bench_echo=True,
    )


async def _profile_load(
    server: Server, clients: Clients, name: str, workload: cases.Workload, out: Path, conc: int
) -> None:
    spec = Spec(
        case=name,
        kind=workload.kind,
        start_at=0.0,  # set by Clients.start
        end_at=0.0,
        target=server.grpc_target if workload.kind != "rest" else f"127.0.0.1:{server.http_port}",
        method=workload.method,
        requests=workload.requests,
        response_type=workload.response_type,
        fields_per_op=workload.fields_per_op,
        concurrency=conc,
        channels=2,
        token=token("bench-app", APP_ROLE),
    )
    start_at, _ = await asyncio.to_thread(
        clients.start, [replace(spec) for _ in range(len(clients))], 1.0, SECONDS
    )
    await asyncio.sleep(max(start_at - time.monotonic(), 0))
    if _PY_SPY["on"]:
        text = await _py_spy(out / f"profile-{name}.collapsed")
    else:
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        await asyncio.sleep(SECONDS)
        profiler.stop()
        text = profiler.output_text(unicode=True, color=False, show_all=False)
    outcomes = await asyncio.to_thread(clients.receive, 60)
    fields = sum(o.fields for o in outcomes)
    errors = sum(o.errors for o in outcomes)
    header = f"# {name}: {fields / SECONDS:.0f} fields/s while profiled, errors={errors}\n"
    (out / f"profile-{name}.txt").write_text(header + text)
    print(header.strip(), file=sys.stderr)


_PY_SPY = {"on": False}
_MARKS = (
    "DecryptBatch",
    "EncryptBatch",
    "columns_of",
    "run_columns",
    "open_many",
    "seal_many",
    "encode_results",
    "FromString",
    "SerializeToString",
)


async def _py_spy(collapsed: Path) -> str:
    """Sample this process for ``SECONDS`` with py-spy; a summary of what it saw."""
    import shutil

    command = ["py-spy"] if shutil.which("py-spy") else ["uvx", "py-spy"]
    process = await asyncio.create_subprocess_exec(
        *command,
        "record",
        "--pid",
        str(os.getpid()),
        "--duration",
        str(int(SECONDS)),
        "--rate",
        "500",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(collapsed),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await process.wait()
    stacks: list[tuple[list[str], int]] = []
    for line in (await asyncio.to_thread(collapsed.read_text)).splitlines():
        frames, _, count = line.rpartition(" ")
        stacks.append((frames.split(";"), int(count)))
    total = sum(n for _, n in stacks) or 1
    lines = [f"py-spy, {total} samples of the busy Python threads ({SECONDS} s at 500 Hz)", ""]
    lines.append("share of samples with the function on the stack:")
    for mark in _MARKS:
        n = sum(c for frames, c in stacks if any(mark in f for f in frames))
        if n:
            lines.append(f"  {100 * n / total:5.1f} %  {mark}")
    leaves: dict[str, int] = {}
    for frames, n in stacks:
        leaf = frames[-1].split(" (")[0] if frames else "?"
        leaves[leaf] = leaves.get(leaf, 0) + n
    lines += ["", "leaf frames (self time), top 20:"]
    for leaf, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:20]:
        lines.append(f"  {100 * n / total:5.1f} %  {leaf}")
    return "\n".join(lines) + "\n"


async def _profile_service(container: Any, sealed: list[tuple[bytes, bytes]], out: Path) -> None:
    from app.application.crypto import Item
    from app.application.targets import Target
    from app.domain.values import Caller

    caller = Caller("bench-app", frozenset({APP_ROLE}))
    target = Target.of(table=cases.TABLE, column=cases.COLUMN)
    decrypt_items = [Item(target, c, x) for c, x in sealed]
    encrypt_items = [Item(target, os.urandom(64), x) for _, x in sealed]
    crypto = container.crypto
    for name, op, items in (
        ("service.decrypt_batch", crypto.decrypt_batch, decrypt_items),
        ("service.encrypt_batch", crypto.encrypt_batch, encrypt_items),
    ):
        await op(caller, items)
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        n, started, cpu = 0, time.perf_counter(), time.process_time()
        profiler.start()
        while time.perf_counter() - started < SECONDS:
            await op(caller, items)
            n += len(items)
        profiler.stop()
        cpu = time.process_time() - cpu
        header = f"# {name}: {cpu / n * 1e6:.2f} CPU µs per item (profiled)\n"
        (out / f"profile-{name}.txt").write_text(
            header + profiler.output_text(unicode=True, color=False, show_all=False)
        )
        print(header.strip(), file=sys.stderr)


async def _main(
    selected: list[str], out: Path, database_url: str, kms_url: str, kms_key: str
) -> None:
    from app.bootstrap import running
    from app.server import _serve_container

    if True:
        http, grpc_port = free_port(), free_port()
        settings = _settings(database_url, kms_url, out / "data", http, grpc_port)
        stop = asyncio.Event()
        async with running(settings) as container:
            serving = asyncio.create_task(_serve_container(container, stop))
            server = Server(process=None, http_port=http, grpc_port=grpc_port, log=out, workers=1)  # type: ignore[arg-type]
            await asyncio.sleep(1.0)
            await asyncio.to_thread(configure, server, kms_key)
            app_token = token("bench-app", APP_ROLE)
            sealed = await asyncio.to_thread(
                cases.seal_pool, server.grpc_target, app_token, 64, cases.BATCH_ITEMS
            )
            plan: list[tuple[str, cases.Workload, int]] = [
                ("grpc.echo.64", cases.echo(64), 32),
                ("grpc.encrypt.64", cases.encrypt(64), 32),
                ("grpc.decrypt.64", cases.decrypt(sealed), 32),
                ("grpc.decrypt_batch", cases.decrypt_batch(sealed), 4),
                ("grpc.encrypt_batch", cases.encrypt_batch(64), 4),
                ("grpc.decrypt_stream.64", cases.decrypt_stream(sealed), 2),
                ("rest.decrypt.64", cases.rest_decrypt(sealed), 16),
            ]
            clients = await asyncio.to_thread(Clients, 2)
            try:
                for name, workload, conc in plan:
                    if not selected or any(name.startswith(s) for s in selected):
                        await _profile_load(server, clients, name, workload, out, conc)
            finally:
                await asyncio.to_thread(clients.close)
            if not selected or any(
                "service".startswith(s) or s.startswith("service") for s in selected
            ):
                await _profile_service(container, sealed, out)
            stop.set()
            await serving


def main() -> None:
    parser = argparse.ArgumentParser(description="profile the ekms hot path")
    parser.add_argument("cases", nargs="*", help="case name prefixes (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--py-spy", action="store_true", help="sample with py-spy instead")
    args = parser.parse_args()
    _PY_SPY["on"] = args.py_spy
    args.out.mkdir(parents=True, exist_ok=True)
    from app.infra.logging import configure_logging

    configure_logging("INFO", json=True)
    import uvloop

    os.environ.update(AWS_ENV)
    with bench_database() as database_url, moto_kms() as (kms_url, kms_key):
        uvloop.run(_main(args.cases, args.out, database_url, kms_url, kms_key))


if __name__ == "__main__":
    main()
