"""The bench-only Echo service: off by default, and when on, behind the same auth as Crypto."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from app.bootstrap import build_grpc_server, grpc_options, running
from app.grpc.gen.ekms.bench.v1 import echo_pb2, echo_pb2_grpc
from app.infra.settings import Settings
from app.infra.system import SystemClock
from app.infra.tokens import mint_dev_token

SECRET = "bench-echo-test-secret-0123456789abcdef"


async def _serve(tmp_path: Path, *, bench_echo: bool) -> AsyncIterator[echo_pb2_grpc.EchoStub]:
    settings = Settings(
        data_dir=tmp_path,
        jwt_hs256_secret=SECRET,  # type: ignore[arg-type]
        scheduler_enabled=False,
        grpc_port=0,
        bench_echo=bench_echo,
        log_json=False,
    )
    async with running(settings) as container:
        options = dataclasses.replace(grpc_options(settings), port=0)
        server = build_grpc_server(container, options)
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield echo_pb2_grpc.EchoStub(channel)
        finally:
            await server.stop(0)


def _auth() -> tuple[tuple[str, str], ...]:
    token = mint_dev_token(SECRET, sub="bench", roles=["svc"], clock=SystemClock())
    return (("authorization", f"Bearer {token}"),)


async def test_echo_is_not_served_by_default(tmp_path: Path) -> None:
    assert Settings().bench_echo is False
    async for stub in _serve(tmp_path, bench_echo=False):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Echo(echo_pb2.EchoRequest(payload=b"x"), metadata=_auth())
        assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_echo_answers_an_authenticated_caller_and_refuses_others(tmp_path: Path) -> None:
    async for stub in _serve(tmp_path, bench_echo=True):
        response = await stub.Echo(echo_pb2.EchoRequest(id="1", payload=b"ping"), metadata=_auth())
        assert (response.id, response.payload) == ("1", b"ping")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Echo(echo_pb2.EchoRequest(payload=b"ping"))
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED

        async def requests() -> AsyncIterator[echo_pb2.EchoRequest]:
            for i in range(3):
                yield echo_pb2.EchoRequest(id=str(i), payload=bytes([i]))

        answers = [r.id async for r in stub.EchoStream(requests(), metadata=_auth())]
        assert answers == ["0", "1", "2"]
