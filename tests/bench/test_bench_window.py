"""The load generator counts inside the window the orchestrator opens once the client is
connected, not inside one fixed before it was (a loaded CI machine once left a 0.3 s window
with no operation in it, and the smoke run failed)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.load import Spec, run_spec


async def _ok_server() -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line[15:])
                    for line in head.split(b"\r\n")
                    if line[:15].lower() == b"content-length:"
                )
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.asyncio
async def test_a_client_counts_in_the_window_it_is_given_once_connected() -> None:
    server, port = await _ok_server()
    given: list[tuple[float, float]] = []

    async def ready() -> tuple[float, float]:
        # The window the spec was sent with is long past: only the one given here can count.
        start_at = time.monotonic() + 0.05
        given.append((start_at, start_at + 0.3))
        return given[-1]

    spec = Spec(
        case="rest.window",
        kind="rest",
        start_at=0.0,
        end_at=0.0,
        target=f"127.0.0.1:{port}",
        method="/x",
        requests=[b"{}"],
        concurrency=2,
    )
    try:
        outcome = await run_spec(spec, ready)
    finally:
        server.close()
        await server.wait_closed()

    assert given, "the client never said it was ready"
    assert (spec.start_at, spec.end_at) == given[0]
    assert outcome.errors == 0, outcome.first_error
    assert outcome.ops > 0 and outcome.fields == outcome.ops
    assert outcome.window_seconds > 0
