"""Finding 11: a per-caller rate limit and caps on concurrent streams, written once in the
application layer and answered RESOURCE_EXHAUSTED / 429 by both adapters."""

from __future__ import annotations

import math

import grpc
import pytest
from google.rpc import error_details_pb2

from app.api.errors import headers_for, http_status
from app.application.crypto import CryptoService, Item
from app.application.limits import DataPlaneLimits, RateLimiter, StreamSlots
from app.application.targets import Target
from app.domain.audit import AuditResult
from app.domain.errors import Reason, ResourceExhausted
from app.grpc.errors import code_for, to_status
from app.infra.settings import Settings
from tests.fakes import FakeClock
from tests.unit.conftest import APP, World

TARGET = Target(module="global.payroll")


def _refused(limiter: RateLimiter, caller: str = "svc", cost: int = 1) -> ResourceExhausted:
    with pytest.raises(ResourceExhausted) as err:
        limiter.acquire(caller, cost)
    assert err.value.reason is Reason.RATE_LIMITED
    return err.value


def test_a_burst_then_refusal_with_the_time_to_the_next_token_then_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, rate=2.0, burst=3)
    for _ in range(3):
        limiter.acquire("svc")
    assert _refused(limiter).retry_after == pytest.approx(0.5)
    clock.advance(0.25)
    assert _refused(limiter).retry_after == pytest.approx(0.25)
    clock.advance(0.25)
    limiter.acquire("svc")  # one token refilled
    _refused(limiter)
    clock.advance(60)  # refills to the burst, not beyond
    for _ in range(3):
        limiter.acquire("svc")
    _refused(limiter)


def test_callers_have_their_own_buckets() -> None:
    limiter = RateLimiter(FakeClock(), rate=1.0, burst=1)
    limiter.acquire("a")
    _refused(limiter, "a")
    limiter.acquire("b")


def test_a_batch_costs_its_items_and_one_larger_than_the_burst_leaves_a_debt() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, rate=10.0, burst=20)
    limiter.acquire("svc", 15)
    assert _refused(limiter, cost=10).retry_after == pytest.approx(0.5)  # 5 left, 10 needed
    clock.advance(60)
    limiter.acquire("svc", 100)  # a full bucket admits a batch past the burst...
    assert _refused(limiter).retry_after == pytest.approx(8.1)  # ...at -80: 81 tokens to go
    clock.advance(8.1)
    limiter.acquire("svc")
    limiter.acquire("svc", 0)  # an empty batch costs nothing


def test_the_buckets_are_bounded_least_recently_seen_forgotten_first() -> None:
    limiter = RateLimiter(FakeClock(), rate=1.0, burst=1, max_callers=3)
    for caller in ("a", "b", "c"):
        limiter.acquire(caller)
    _refused(limiter, "a")  # "a" is now the most recently seen
    limiter.acquire("d")  # evicts "b"
    assert len(limiter) == 3
    limiter.acquire("b")  # forgotten: a fresh bucket
    _refused(limiter, "a")


def test_stream_slots_cap_per_caller_and_in_all_and_release_once() -> None:
    slots = StreamSlots(per_caller=2, total=3)
    a1, a2 = slots.open("a"), slots.open("a")
    with pytest.raises(ResourceExhausted) as err:
        slots.open("a")
    assert err.value.reason is Reason.TOO_MANY_STREAMS and err.value.retry_after is None
    b1 = slots.open("b")
    with pytest.raises(ResourceExhausted):
        slots.open("c")  # the total
    a1.release()
    a1.release()  # idempotent: does not free a second slot
    assert slots.open_streams == 2 and slots.held_by("a") == 1
    with b1:
        pass  # released on the way out
    b2, b3 = slots.open("b"), slots.open("b")
    with pytest.raises(ResourceExhausted):
        slots.open("c")  # a2, b2, b3: the total again
    for slot in (a2, b2, b3):
        slot.release()
    assert slots.open_streams == 0 and slots.held_by("a") == slots.held_by("b") == 0


async def test_the_data_plane_refuses_past_the_rate_audits_it_and_does_nothing(
    ready: World,
) -> None:
    limits = DataPlaneLimits(rate=RateLimiter(ready.clock, rate=1.0, burst=2))
    crypto = CryptoService(ready.ctx, limits=limits)
    blob = (await crypto.encrypt(APP, Item(TARGET, b"one"))).data or b""
    await crypto.decrypt(APP, Item(TARGET, blob))
    await ready.ctx.audit.flush()
    with pytest.raises(ResourceExhausted) as err:
        await crypto.encrypt_batch(APP, [Item(TARGET, b"x")] * 3)
    assert err.value.retry_after == pytest.approx(2.0)  # 0 left; 3 > the burst: a full bucket
    await ready.ctx.audit.flush()
    refused = [e for e in ready.db.committed.audit if e.reason == "RATE_LIMITED"]
    assert [(e.actor, e.action, e.result, e.count) for e in refused] == [
        (APP.subject, "encrypt", AuditResult.FAILURE, 3)
    ]
    served = [
        e
        for e in ready.db.committed.audit
        if e.result is AuditResult.SUCCESS and e.action in ("encrypt", "decrypt")
    ]
    assert sum(e.count for e in served) == 2  # the refused batch did nothing
    ready.clock.advance(1)
    await crypto.encrypt(APP, Item(TARGET, b"admitted again"))


def test_both_adapters_answer_resource_exhausted_with_when_to_retry() -> None:
    error = ResourceExhausted("slow down", retry_after=2.2)
    assert code_for(error) is grpc.StatusCode.RESOURCE_EXHAUSTED
    status = to_status(error, method="Encrypt")
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and info.reason == "RATE_LIMITED"
    assert status.details[1].Unpack(retry) and retry.retry_delay.ToNanoseconds() == 2_200_000_000
    assert http_status(error) == 429
    assert headers_for(error, 429, token_given=True) == {"Retry-After": "3"}
    streams = ResourceExhausted("busy", reason=Reason.TOO_MANY_STREAMS)
    assert len(to_status(streams, method="EncryptStream").details) == 1  # no RetryInfo


def test_the_settings_default_to_off_and_caps() -> None:
    settings = Settings()
    assert settings.rate_limit_per_caller is None
    assert (settings.max_streams_per_caller, settings.max_streams) == (16, 256)
    tuned = Settings(rate_limit_per_caller=2.5)
    assert tuned.effective_rate_limit_burst == math.ceil(2.5)
    assert Settings(rate_limit_per_caller="", rate_limit_burst="").rate_limit_per_caller is None
