"""The load generator: a client process that drives one case against a running server.

The orchestrator (``bench.run``) keeps a few of these processes alive (``multiprocessing``,
spawn) and sends each one a ``Spec`` per case. A client sends pre-serialized request bytes and
does not parse responses (raw-bytes gRPC methods, a minimal HTTP/1.1 keep-alive client for
REST), so it spends as little CPU per operation as possible; it parses a sample of responses
to check that they succeed.

Timing: a client first opens its connections and says it is ready; when every client is, the
orchestrator gives the window as absolute ``time.monotonic()`` instants (the clock is shared by
all processes on the host). So a client slow to connect on a loaded machine cannot miss the
window (a CI run once counted no operation in a 0.3 s window). A client then starts at once
(warm-up), counts only operations that complete inside ``[start_at, end_at]``, and records its
own CPU time at both ends.

Open-loop mode (``rate`` set): requests leave on a fixed schedule, and a latency is measured
from the scheduled instant, so a slow server cannot hide its queueing delay (no coordinated
omission).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from array import array
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import grpc

from bench.stack import runq_wait_seconds

MAX_SAMPLES = 200_000
READY = "ready"  # a client's word to the orchestrator: connected, waiting for the window
VALIDATE_EVERY = 64


@dataclass
class Spec:
    """One case for one client process."""

    case: str
    kind: str  # "unary" | "stream" | "rest"
    start_at: float  # set by the orchestrator once every client is ready (see Window)
    end_at: float
    target: str  # host:port
    method: str = ""  # gRPC full method, or the REST path
    requests: list[bytes] = field(default_factory=list)  # serialized messages or JSON bodies
    response_type: str = ""  # for validation, see _parse
    fields_per_op: int = 1
    concurrency: int = 16
    channels: int = 1
    window: int = 128  # streams: items in flight per stream
    rate: float | None = None  # open-loop requests/s for this process
    token: str = ""


@dataclass
class Outcome:
    case: str
    ops: int = 0
    fields: int = 0
    errors: int = 0
    first_error: str | None = None
    validated: int = 0
    latencies: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]
    client_cpu_seconds: float = 0.0
    runq_wait_seconds: float = 0.0  # this client's event-loop thread waiting for a core
    window_seconds: float = 0.0
    late: bool = False  # the client was not ready by start_at


class _Recorder:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.outcome = Outcome(spec.case)
        self.seen = 0
        self.cpu_start: float | None = None

    def done(self, started: float, finished: float, fields: int) -> None:
        if self.spec.start_at <= finished <= self.spec.end_at:
            out = self.outcome
            out.ops += 1
            out.fields += fields
            self.seen += 1
            if len(out.latencies) < MAX_SAMPLES:
                out.latencies.append(finished - started)
            elif self.seen % 4 == 0:  # keep sampling, thinly, past the cap
                out.latencies[self.seen % MAX_SAMPLES] = finished - started

    def error(self, exc: BaseException | str) -> None:
        self.outcome.errors += 1
        if self.outcome.first_error is None:
            self.outcome.first_error = str(exc)[:500]


def _parse(response_type: str, payload: bytes) -> int:
    """Parse a response; the number of failed items in it (0 for a unary success)."""
    if response_type == "echo":
        from app.grpc.gen.ekms.bench.v1 import echo_pb2

        echo_pb2.EchoResponse.FromString(payload)
        return 0
    from ekms_client.gen.ekms.v1 import crypto_pb2 as pb

    message: Any = getattr(pb, response_type).FromString(payload)
    if hasattr(message, "results"):
        return sum(1 for r in message.results if r.status.code != 0)
    if hasattr(message, "status"):
        return 1 if message.status.code != 0 else 0
    return 0


def _identity(data: bytes) -> bytes:
    return data


# --- gRPC ----------------------------------------------------------------------------------------


async def _unary_worker(
    rec: _Recorder, call: Callable[..., Awaitable[bytes]], index: int, metadata: Any
) -> None:
    spec = rec.spec
    requests = spec.requests
    n = index
    count = 0
    rate = spec.rate
    per_worker_interval = spec.concurrency / rate if rate else 0.0
    scheduled = time.monotonic() + (index / rate if rate else 0.0)
    while True:
        if rate:
            now = time.monotonic()
            if scheduled > now:
                await asyncio.sleep(scheduled - now)
            started = scheduled
            scheduled += per_worker_interval
        else:
            started = time.monotonic()
        if started >= spec.end_at:
            return
        try:
            payload = await call(requests[n % len(requests)], metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            rec.error(f"{exc.code().name}: {exc.details()}")
            await asyncio.sleep(0.01)
            continue
        finished = time.monotonic()
        count += 1
        if count == 1 or count % VALIDATE_EVERY == 0:
            failed = _parse(spec.response_type, payload)
            rec.outcome.validated += 1
            if failed:
                rec.error(f"{failed} failed items in a {spec.response_type}")
        rec.done(started, finished, spec.fields_per_op)
        n += spec.concurrency


async def _stream_worker(
    rec: _Recorder, channel: grpc.aio.Channel, index: int, metadata: Any
) -> None:
    spec = rec.spec
    method = channel.stream_stream(
        spec.method, request_serializer=_identity, response_deserializer=_identity
    )
    call = method(metadata=metadata)
    window = asyncio.Semaphore(spec.window)
    sent: deque[float] = deque()
    requests = spec.requests

    async def write() -> None:
        n = index
        while time.monotonic() < spec.end_at:
            await window.acquire()
            sent.append(time.monotonic())
            await call.write(requests[n % len(requests)])
            n += 1
        await call.done_writing()

    writer = asyncio.create_task(write())
    count = 0
    try:
        while True:
            payload = await call.read()
            if payload is grpc.aio.EOF:
                break
            finished = time.monotonic()
            window.release()
            count += 1
            if count == 1 or count % (VALIDATE_EVERY * 16) == 0:
                failed = _parse(spec.response_type, payload)
                rec.outcome.validated += 1
                if failed:
                    rec.error(f"a failed item in a {spec.response_type}")
            rec.done(sent.popleft(), finished, spec.fields_per_op)
        await writer
    except grpc.aio.AioRpcError as exc:
        rec.error(f"{exc.code().name}: {exc.details()}")
        writer.cancel()


async def _run_grpc(rec: _Recorder, ready: Ready) -> None:
    spec = rec.spec
    metadata = (("authorization", f"Bearer {spec.token}"),)
    options = [
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20),
        # One TCP connection per channel: grpc would otherwise share one connection between
        # the channels of a process, and with --workers every call would reach one worker.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    channels = [
        grpc.aio.insecure_channel(spec.target, options=options) for _ in range(spec.channels)
    ]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 10)
        await _wait_window(spec, ready)
        if spec.kind == "stream":
            workers = [
                _stream_worker(rec, channels[i % len(channels)], i, metadata)
                for i in range(spec.concurrency)
            ]
        else:
            calls = [
                ch.unary_unary(
                    spec.method, request_serializer=_identity, response_deserializer=_identity
                )
                for ch in channels
            ]
            workers = [
                _unary_worker(rec, calls[i % len(calls)], i, metadata)
                for i in range(spec.concurrency)
            ]
        await _timed(rec, workers)
    finally:
        for channel in channels:
            await channel.close()


# --- REST: a minimal HTTP/1.1 keep-alive client --------------------------------------------------


def _http_requests(spec: Spec) -> list[bytes]:
    host = spec.target
    head = (
        f"POST {spec.method} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {spec.token}\r\n"
    )
    return [
        (head + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body
        for body in spec.requests
    ]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _rest_worker(
    rec: _Recorder,
    raw: list[bytes],
    index: int,
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    spec = rec.spec
    reader, writer = connection
    n = index
    count = 0
    try:
        while True:
            started = time.monotonic()
            if started >= spec.end_at:
                return
            writer.write(raw[n % len(raw)])
            status, body = await _read_response(reader)
            finished = time.monotonic()
            count += 1
            if status != 200:
                rec.error(f"HTTP {status}: {body[:200]!r}")
                continue
            if count == 1:
                rec.outcome.validated += 1
            rec.done(started, finished, 1)
            n += spec.concurrency
    finally:
        writer.close()


async def _run_rest(rec: _Recorder, ready: Ready) -> None:
    raw = _http_requests(rec.spec)
    host, port = rec.spec.target.rsplit(":", 1)
    connections = [
        await asyncio.open_connection(host, int(port)) for _ in range(rec.spec.concurrency)
    ]
    await _wait_window(rec.spec, ready)
    await _timed(rec, [_rest_worker(rec, raw, i, c) for i, c in enumerate(connections)])


# --- driver --------------------------------------------------------------------------------------


async def _timed(rec: _Recorder, workers: list[Awaitable[None]]) -> None:
    spec = rec.spec

    async def clock() -> None:
        now = time.monotonic()
        if now > spec.start_at:
            rec.outcome.late = True
        await asyncio.sleep(max(spec.start_at - now, 0.0))
        cpu0, wall0 = time.process_time(), time.monotonic()
        wait0 = runq_wait_seconds(os.getpid())
        await asyncio.sleep(max(spec.end_at - time.monotonic(), 0.0))
        rec.outcome.client_cpu_seconds = time.process_time() - cpu0
        rec.outcome.runq_wait_seconds = runq_wait_seconds(os.getpid()) - wait0
        rec.outcome.window_seconds = time.monotonic() - wall0

    results = await asyncio.gather(clock(), *workers, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            rec.error(f"{type(result).__name__}: {result}")


# Told the client is connected; answers the window ``(start_at, end_at)``, or None to keep the
# spec's own.
Ready = Callable[[], Awaitable[tuple[float, float] | None]]


async def _keep_window() -> None:
    return None


async def _wait_window(spec: Spec, ready: Ready) -> None:
    # The client's own objects so far (channels, requests) are left out of its collections,
    # as ekms serve does after start-up: less of the client's jitter in the latencies.
    gc.collect()
    gc.freeze()
    window = await ready()
    if window is not None:
        spec.start_at, spec.end_at = window


async def run_spec(spec: Spec, ready: Ready = _keep_window) -> Outcome:
    rec = _Recorder(spec)
    if spec.kind == "rest":
        await _run_rest(rec, ready)
    else:
        await _run_grpc(rec, ready)
    return rec.outcome


def worker_main(conn: Connection) -> None:
    """Entry point of a client process: run specs until told to stop (``None``)."""
    try:
        import uvloop

        run: Callable[[Any], Any] = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    while True:
        spec = conn.recv()
        if spec is None:
            return

        async def ready() -> tuple[float, float]:
            conn.send(READY)
            window: tuple[float, float] = await asyncio.to_thread(conn.recv)
            return window

        try:
            conn.send(run(run_spec(spec, ready)))
        except Exception as exc:  # report, keep serving
            outcome = Outcome(spec.case)
            outcome.errors = 1
            outcome.first_error = f"{type(exc).__name__}: {exc}"
            conn.send(outcome)
