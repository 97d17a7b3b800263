"""``ekms serve`` runs the gRPC server beside the REST app on one loop, and stops both."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import httpx
import pytest
from ekms_client.gen.ekms.v1 import crypto_pb2 as pb
from ekms_client.gen.ekms.v1 import crypto_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.bootstrap import StartupError
from app.server import serve
from tests.e2e.conftest import e2e_settings, error_info, mint, module_target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_runs_grpc_beside_http_and_stops_on_request(
    pg_url: str, moto_server: str, aws_env: str, tmp_path: Path
) -> None:
    grpc_port, http_port = _free_port(), _free_port()
    settings = e2e_settings(
        pg_url, moto_server, aws_env, tmp_path, grpc_port=grpc_port, http_port=http_port
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, stop=stop))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=20
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING  # not configured yet
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pb_grpc.CryptoStub(channel).Encrypt(
                    pb.EncryptRequest(target=module_target(), plaintext=b"x"),
                    metadata=(("authorization", f"Bearer {mint('svc', 'billing')}"),),
                )
            assert error_info(err.value) == (grpc.StatusCode.NOT_FOUND, "MODULE_NOT_FOUND")
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{http_port}/livez")).status_code == 200
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=30)
    assert serving.exception() is None


async def test_serve_refuses_to_start_when_the_grpc_port_is_taken(
    pg_url: str, moto_server: str, aws_env: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = e2e_settings(
            pg_url, moto_server, aws_env, tmp_path, grpc_port=taken.getsockname()[1]
        )
        with pytest.raises(StartupError, match="could not listen"):
            await serve(settings, stop=asyncio.Event())
