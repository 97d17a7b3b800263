"""Single-flight syncs with fakes: callers share one run and its result or error; a replica
that waited for another's sync answers what that sync recorded, or runs its own when it
recorded nothing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from app.application.single_flight import SingleFlight
from app.application.sync import sync_external_key
from app.application.sync_flight import sync_or_join
from app.domain.errors import NotFound
from app.domain.values import ExternalKeyStatus
from tests.unit.conftest import World


async def test_callers_during_a_run_share_it_and_a_later_call_runs_anew() -> None:
    flight: SingleFlight[int] = SingleFlight()
    go = asyncio.Event()
    runs = 0

    async def job() -> int:
        nonlocal runs
        runs += 1
        await go.wait()
        return runs

    callers = [asyncio.create_task(flight.run(job)) for _ in range(5)]
    await asyncio.sleep(0)  # every caller has asked
    go.set()
    assert await asyncio.gather(*callers) == [1] * 5
    assert flight.joined == 4
    assert await flight.run(job) == 2  # the first run is over: a new one


async def test_callers_share_the_error_and_a_caller_giving_up_does_not_cancel_the_run() -> None:
    flight: SingleFlight[int] = SingleFlight()
    go = asyncio.Event()

    async def job() -> int:
        await go.wait()
        raise NotFound("nothing configured")

    quitter = asyncio.create_task(flight.run(job))
    stayers = [asyncio.create_task(flight.run(job)) for _ in range(3)]
    await asyncio.sleep(0)
    quitter.cancel()
    go.set()
    results = await asyncio.gather(*stayers, return_exceptions=True)
    assert [type(r) for r in results] == [NotFound] * 3
    assert quitter.cancelled()


class OtherReplicaSyncing:
    """A ``SyncLock`` found held by another replica, whose sync (``theirs``) ends before it is
    released; ``theirs`` may record nothing."""

    def __init__(self, theirs: Callable[[], Awaitable[object]]) -> None:
        self.theirs = theirs

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[bool]:
        await self.theirs()
        yield True


async def test_a_replica_that_waited_answers_what_the_other_sync_recorded(ready: World) -> None:
    ready.kms.status = ExternalKeyStatus.DISABLED

    async def theirs() -> None:
        ready.clock.advance(60)
        await sync_external_key(ready.ctx)  # the other replica: same database, same KMS

    here = dataclasses.replace(ready.ctx, sync_lock=OtherReplicaSyncing(theirs))
    described = ready.kms.calls.get("describe", 0)

    report = await sync_or_join(here)

    assert ready.kms.calls["describe"] - described == 1, "only the other replica asked the KMS"
    assert report.status is ExternalKeyStatus.DISABLED
    assert report.previous is ExternalKeyStatus.ENABLED and report.changed
    assert not report.rewrapped and not report.inconclusive


async def test_a_replica_that_waited_for_a_sync_that_recorded_nothing_runs_its_own(
    ready: World,
) -> None:
    async def recorded_nothing() -> None:
        return None

    here = dataclasses.replace(ready.ctx, sync_lock=OtherReplicaSyncing(recorded_nothing))
    described = ready.kms.calls.get("describe", 0)
    ready.clock.advance(60)

    report = await sync_or_join(here)

    assert ready.kms.calls["describe"] - described == 1
    assert report.status is ExternalKeyStatus.ENABLED


@pytest.mark.parametrize("caller_count", [1, 20])
async def test_syncs_asked_together_in_one_process_describe_the_key_once(
    ready: World, caller_count: int
) -> None:
    described = ready.kms.calls.get("describe", 0)
    reports = await asyncio.gather(*(sync_or_join(ready.ctx) for _ in range(caller_count)))
    assert len(set(reports)) == 1
    assert ready.kms.calls["describe"] - described == 1
