"""What a stalled main event loop does to KMS calls, shared loop vs ekms's control loop.

``uv run python -m bench.kms_stall [--rounds 8] [--stall 2.0] [--timeout 1.0]`` starts moto's
KMS server in-process, then, each round, holds the main loop in a CPU-bound stretch (holding
the GIL, as a large batch does) for ``--stall`` seconds while one DescribeKey is in flight, once
with the call on the main loop and once on ``ControlLoop``. It prints how many calls of each
kind came back Enabled and how many as "timed out", and the control loop's measured stall.

Seen on the 2-core machine (issue 19): with a 2 s stall and 1 s timeouts, the shared-loop call
timed out in every round (aiohttp's connect timer fires when the loop comes back, although moto
answered at once), the control-loop call never did.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import boto3
from moto.server import ThreadedMotoServer

from app.application.ports import ExternalKeyRef
from app.domain.values import ExternalKeyStatus, KmsProvider
from app.infra.control_loop import ControlLoop
from app.infra.kms.aws import AwsKmsConnector


async def _round(call: object, stall: float) -> tuple[bool, float]:
    async def hog() -> None:
        await asyncio.sleep(0)
        end = time.perf_counter() + stall
        while time.perf_counter() < end:  # CPU-bound, holds the GIL
            pass

    task = asyncio.create_task(hog())
    started = time.perf_counter()
    description = await call()  # type: ignore[operator]
    await task
    return description.status is ExternalKeyStatus.ENABLED, time.perf_counter() - started


async def main(rounds: int, stall: float, kms_timeout: float, url: str, key_id: str) -> None:
    def connector() -> AwsKmsConnector:  # one per loop: aiobotocore clients bind to theirs
        return AwsKmsConnector(
            default_region="eu-west-1",
            default_endpoint_url=url,
            connect_timeout=kms_timeout,
            read_timeout=kms_timeout,
            max_attempts=1,
        )

    ref = ExternalKeyRef(KmsProvider.AWS, key_id)
    shared, isolated = connector(), connector()
    loop = ControlLoop()
    on_main, on_control = shared.connect(ref), isolated.connect(ref)
    ways = {
        "shared loop": on_main.describe,
        "control loop": lambda: loop.run(on_control.describe),
    }
    results: dict[str, list[bool]] = {name: [] for name in ways}
    mark = loop.mark()
    for call in ways.values():  # warm both connection pools
        await call()
    for _ in range(rounds):
        for name, call in ways.items():
            ok, _ = await _round(call, stall)
            results[name].append(ok)
    for name, oks in results.items():
        print(f"{name:13s} enabled {sum(oks)}/{len(oks)}, timed out {len(oks) - sum(oks)}")
    print(f"control loop stalled {loop.stalled_since(mark):.3f} s in all")
    await shared.aclose()
    await loop.aclose(isolated.aclose)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--stall", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")  # noqa: S105 - moto's dummy
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    admin = boto3.client("kms", region_name="eu-west-1", endpoint_url=endpoint)
    key = admin.create_key()["KeyMetadata"]["KeyId"]
    try:
        asyncio.run(main(args.rounds, args.stall, args.timeout, endpoint, key))
    finally:
        server.stop()
