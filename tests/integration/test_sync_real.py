"""The status sync against moto's KMS server: rotation rewrap under load, an unreachable KMS."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from app.application.configuration import get_status
from app.application.crypto import Item
from app.application.sync import sync_external_key
from app.application.targets import Target
from app.bootstrap import Container, running
from app.domain.errors import KeyUnavailable, Reason
from app.domain.values import (
    ExternalKeyStatus,
    KmsProvider,
)
from app.infra.settings import Settings
from tests.chain_support import APP, open_module

TARGET = Target(module="global.sync")


@pytest.fixture
def own_moto(aws_env: str) -> Iterator[tuple[ThreadedMotoServer, str, Any]]:
    """A KMS server this test may stop and start again (moto's state outlives the server)."""
    with socket.socket() as probe:  # a fixed port, so a restarted server is found again
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    admin = boto3.client(
        "kms",
        region_name=aws_env,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )
    yield server, url, admin
    server.stop()


@asynccontextmanager
async def _node(
    pg_url: str, moto: tuple[ThreadedMotoServer, str, Any], tmp_path: Path, **overrides: Any
) -> AsyncIterator[Container]:
    """A node on ``moto``'s fresh key, configured with module global.sync open to role svc."""
    _, url, admin = moto
    key_id = admin.create_key()["KeyMetadata"]["KeyId"]
    values: dict[str, Any] = {
        "database_url": pg_url,
        "kms_provider": "aws",
        "aws_endpoint_url": url,
        "allow_insecure_kms_endpoint": True,
        "aws_region": admin.meta.region_name,
        "data_dir": tmp_path,
        "jwt_hs256_secret": "z" * 40,
        "scheduler_enabled": False,
    }
    async with running(Settings(**{**values, **overrides})) as container:
        await open_module(container.ctx, KmsProvider.AWS, key_id, "global.sync")
        container.key_id = key_id  # type: ignore[attr-defined]
        yield container


@pytest.fixture
async def node(
    pg_url: str, aws_env: str, own_moto: tuple[ThreadedMotoServer, str, Any], tmp_path: Path
) -> AsyncIterator[Container]:
    async with _node(pg_url, own_moto, tmp_path) as container:
        yield container


async def test_decrypts_during_a_rotation_rewrap_all_succeed(
    node: Container, own_moto: tuple[ThreadedMotoServer, str, Any]
) -> None:
    _, _, admin = own_moto
    blobs = [(await node.crypto.encrypt(APP, Item(TARGET, b"v%d" % i))).data for i in range(20)]
    stop = asyncio.Event()
    done = 0

    async def reader(worker: int) -> None:
        nonlocal done
        while not stop.is_set():
            for i, blob in enumerate(blobs):
                assert blob is not None
                result = await node.crypto.decrypt(APP, Item(TARGET, blob))
                assert result.data == b"v%d" % i
                done += 1
                await asyncio.sleep(0)  # as a server's calls would, interleave with I/O

    readers = [asyncio.create_task(reader(w)) for w in range(8)]
    await asyncio.sleep(0.05)
    admin.rotate_key_on_demand(KeyId=node.key_id)  # type: ignore[attr-defined]
    before = done
    report = await sync_external_key(node.ctx)
    after = done
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*readers)  # any failed decrypt raises here
    assert report.rewrapped
    assert after > before, "the readers kept decrypting while the rewrap ran"
    print(f"{after - before} decrypts ran during the rewrap, {done} in all, none failed")


async def test_unreachable_kms_serves_within_grace_then_fails_closed_and_recovers(
    node: Container, own_moto: tuple[ThreadedMotoServer, str, Any]
) -> None:
    server, _, _ = own_moto
    blob = (await node.crypto.encrypt(APP, Item(TARGET, b"kept"))).data
    assert blob is not None
    server.stop()
    report = await sync_external_key(node.ctx)
    assert report.status is ExternalKeyStatus.UNAVAILABLE and report.reason
    assert (await node.crypto.decrypt(APP, Item(TARGET, blob))).data == b"kept"  # within grace
    assert (await node.readiness()).ready

    node.ctx.chain.unavailable_grace = timedelta(0)  # the grace period has run out
    node.ctx.chain.invalidate()
    with pytest.raises(KeyUnavailable) as err:
        await node.crypto.decrypt(APP, Item(TARGET, blob))
    assert err.value.reason is Reason.EXTERNAL_KEY_UNAVAILABLE
    assert not (await node.readiness()).ready

    node.ctx.chain.unavailable_grace = timedelta(minutes=15)
    node.ctx.chain.purge()  # a restart while the KMS is away cannot unwrap the KEK
    assert not (await node.readiness()).ready
    with pytest.raises(Exception) as cold:
        await node.crypto.decrypt(APP, Item(TARGET, blob))
    assert getattr(cold.value, "reason", None) in (
        Reason.KMS_UNAVAILABLE,
        Reason.EXTERNAL_KEY_UNAVAILABLE,
    )

    server.start()  # same port: the KMS is back
    node.ctx.chain._kms_retry_at = 0.0  # noqa: SLF001 - skip the 2 s negative cache
    await sync_external_key(node.ctx)
    assert (await node.crypto.decrypt(APP, Item(TARGET, blob))).data == b"kept"
    status = await get_status(node.ctx)
    assert status.external_key_status is ExternalKeyStatus.ENABLED and status.open_alerts == ()


@pytest.fixture
async def busy_node(
    pg_url: str, aws_env: str, own_moto: tuple[ThreadedMotoServer, str, Any], tmp_path: Path
) -> AsyncIterator[Container]:
    """A node whose KMS timeouts (1 s) are far shorter than the loop stalls a saturated data
    plane causes, so a KMS call that shared the data plane's loop would time out."""
    overrides = {
        "kms_connect_timeout_seconds": 1.0,
        "kms_read_timeout_seconds": 1.0,
        # The database still shares the main loop: keep the flusher from holding a pooled
        # connection, so the sync does not have to open one under the stall (asyncpg's 10 s
        # connect timeout fired once on a loaded machine with twice this load).
        "audit_flush_seconds": 60,
    }
    async with _node(pg_url, own_moto, tmp_path, **overrides) as container:
        yield container


async def test_a_saturated_data_plane_does_not_make_a_healthy_key_unavailable(
    busy_node: Container, own_moto: tuple[ThreadedMotoServer, str, Any]
) -> None:
    """Six readers decrypting 2,000-item batches and one decrypting a batch sized to take
    about 1.5 s (a synchronous stretch of the main loop longer than the 1 s KMS timeouts)
    saturate the loop for the whole sync (three quarters of the time in such stretches). The
    sync never records Unavailable: KMS calls run on a loop of their own, and if even that
    loop could not run (the process starved of CPU on a loaded machine) the sync says
    inconclusive and the next one, as the scheduler's next tick would, sees Enabled and
    rewraps. Every decrypt succeeds throughout. On the old shared loop
    aiohttp's connect timer fired inside such a stretch although moto answered at once."""
    _, _, admin = own_moto
    small = [
        Item(TARGET, (await busy_node.crypto.encrypt(APP, Item(TARGET, b"v%d" % i))).data or b"")
        for i in range(2000)
    ]
    started = time.perf_counter()  # size the large batch to ~1.5 s on this machine, now
    await busy_node.crypto.decrypt_batch(APP, small)
    large = small * max(2, math.ceil(1.5 / max(time.perf_counter() - started, 1e-3)))
    stop = asyncio.Event()
    done, worst_lag = 0, 0.0

    async def reader(items: list[Item], pause: float = 0.0) -> None:
        nonlocal done
        while not stop.is_set():
            results = await busy_node.crypto.decrypt_batch(APP, items)
            assert all(r.error is None for r in results), [r.error for r in results if r.error]
            assert results[7].data == b"v7"
            done += len(results)
            await asyncio.sleep(pause)

    async def lag() -> None:
        nonlocal worst_lag
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            worst_lag = max(worst_lag, loop.time() - before - 0.01)

    tasks = [asyncio.create_task(reader(small)) for _ in range(6)]
    tasks.append(asyncio.create_task(reader(large, pause=0.5)))
    tasks.append(asyncio.create_task(lag()))
    await asyncio.sleep(1.0)
    admin.rotate_key_on_demand(KeyId=busy_node.key_id)  # type: ignore[attr-defined]
    before = done
    reports = []
    for _ in range(5):  # the scheduler's next ticks
        reports.append(await sync_external_key(busy_node.ctx))
        if not reports[-1].inconclusive:
            break
    during = done - before
    stop.set()
    await asyncio.gather(*tasks)  # any failed decrypt raises here
    print(
        f"main loop lag up to {worst_lag:.2f} s; {during} decrypts during the sync; "
        f"{sum(r.inconclusive for r in reports)} inconclusive of {len(reports)}"
    )
    assert all(r.status is ExternalKeyStatus.ENABLED for r in reports), reports
    assert reports[-1].rewrapped and not reports[-1].inconclusive, reports
    assert during > 0
    assert worst_lag > 1.0, "the test must stall the loop past the KMS timeouts to mean anything"
