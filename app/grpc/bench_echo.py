"""``ekms.bench.v1.Echo``: a bench-only baseline served beside ``ekms.v1.Crypto``.

Registered only when ``EKMS_BENCH_ECHO=true`` (never by default). It is served by the same
grpc.aio server behind the same interceptors (boundary, auth), and reads the authenticated
caller like the Crypto servicer does, so the benchmark's "unary vs echo" ratio measures what
the data plane adds on top of the framework and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from app.grpc.auth import current_caller
from app.grpc.gen.ekms.bench.v1 import echo_pb2 as pb
from app.grpc.gen.ekms.bench.v1 import echo_pb2_grpc as pb_grpc


class EchoServicer(pb_grpc.EchoServicer):
    async def Echo(self, request: pb.EchoRequest, context: Any) -> pb.EchoResponse:
        current_caller()  # the same authentication step as every Crypto call
        return pb.EchoResponse(id=request.id, payload=request.payload)

    async def EchoStream(
        self, request_iterator: AsyncIterator[pb.EchoRequest], context: Any
    ) -> AsyncIterator[pb.EchoResponse]:
        current_caller()
        async for request in request_iterator:
            yield pb.EchoResponse(id=request.id, payload=request.payload)


def add_echo_servicer(server: Any) -> None:
    pb_grpc.add_EchoServicer_to_server(EchoServicer(), server)  # type: ignore[no-untyped-call]
