"""Token limits (issue 10, findings 2 and 7): the maximum lifetime, the configurable leeway, the
reserved ``system:`` subjects, and the re-check a long-lived gRPC stream makes on every message.

Time comes from the fake clock; tokens are HS256 over hand-written claims.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from app.bootstrap import resolve_token_settings
from app.domain.errors import Reason, Unauthenticated
from app.domain.values import SYSTEM
from app.infra.settings import Settings
from app.infra.tokens import JwtVerifier, TokenSettings
from tests.fakes import FakeClock

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NOW = int(T0.timestamp())
DAY = 86_400
YEAR_9999 = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
SECRET = "unit-test-secret-that-is-long-enough-for-hs256"


def token(**overrides: Any) -> str:
    claims: dict[str, Any] = {"sub": "alice", "roles": ["reader"], "iat": NOW, "exp": NOW + 600}
    claims.update(overrides)
    body = {k: v for k, v in claims.items() if v is not None}
    return "Bearer " + jwt.encode(body, SECRET, algorithm="HS256")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


MakeVerifier = Callable[..., JwtVerifier]


@pytest.fixture
async def make_verifier(clock: FakeClock) -> AsyncIterator[MakeVerifier]:
    made: list[JwtVerifier] = []

    def make(**settings: Any) -> JwtVerifier:
        made.append(JwtVerifier(TokenSettings(hs256_secret=SECRET, **settings), clock))
        return made[-1]

    yield make
    for verifier in made:
        await verifier.aclose()


async def refusal(verifier: JwtVerifier, authorization: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        await verifier.verify(authorization)
    return info.value


# --- maximum lifetime -------------------------------------------------------------------------


async def test_a_token_may_live_exactly_the_maximum(make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()
    assert (await verifier.verify(token(exp=NOW + DAY))).subject == "alice"


async def test_a_token_living_longer_than_the_maximum_is_refused(
    make_verifier: MakeVerifier,
) -> None:
    err = await refusal(make_verifier(), token(exp=NOW + DAY + 1))
    assert err.reason is Reason.UNAUTHENTICATED
    assert "lifetime exceeds the maximum of 86400 seconds" in err.message


@pytest.mark.parametrize("exp", [1e308, YEAR_9999, 2**53], ids=["1e308", "year-9999", "2^53"])
@pytest.mark.parametrize("with_iat", [True, False], ids=["with-iat", "without-iat"])
async def test_a_far_future_expiry_is_refused(
    make_verifier: MakeVerifier, exp: float, with_iat: bool
) -> None:
    err = await refusal(make_verifier(), token(exp=exp, iat=NOW if with_iat else None))
    assert "lifetime" in err.message


async def test_without_iat_the_lifetime_counts_from_now_with_leeway(
    make_verifier: MakeVerifier,
) -> None:
    verifier = make_verifier(leeway_seconds=30)
    assert await verifier.verify(token(iat=None, exp=NOW + DAY + 30))
    assert "lifetime" in (await refusal(verifier, token(iat=None, exp=NOW + DAY + 31))).message


async def test_an_old_iat_with_a_fresh_exp_is_refused(make_verifier: MakeVerifier) -> None:
    """``exp - iat`` is what the issuer granted: re-dating only ``exp`` does not extend it."""
    err = await refusal(make_verifier(), token(iat=NOW - DAY, exp=NOW + 600))
    assert "lifetime" in err.message


async def test_the_maximum_is_configurable(make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(max_lifetime_seconds=300)
    assert await verifier.verify(token(exp=NOW + 300))
    assert "maximum of 300" in (await refusal(verifier, token(exp=NOW + 301))).message


@pytest.mark.parametrize("value", [0, -1])
def test_a_maximum_lifetime_must_be_positive(value: int) -> None:
    with pytest.raises(ValueError, match="max_lifetime_seconds"):
        TokenSettings(hs256_secret=SECRET, max_lifetime_seconds=value)


# --- leeway -----------------------------------------------------------------------------------


async def test_leeway_zero_refuses_at_exp(make_verifier: MakeVerifier, clock: FakeClock) -> None:
    verifier = make_verifier(leeway_seconds=0)
    authorization = token(exp=NOW + 10)
    clock.advance(9.5)
    assert await verifier.verify(authorization)
    clock.advance(0.5)
    assert (await refusal(verifier, authorization)).reason is Reason.TOKEN_EXPIRED


async def test_leeway_is_configurable(make_verifier: MakeVerifier, clock: FakeClock) -> None:
    verifier = make_verifier(leeway_seconds=5)
    authorization = token(exp=NOW)
    clock.advance(4.9)
    assert await verifier.verify(authorization)
    clock.advance(0.1)
    assert (await refusal(verifier, authorization)).reason is Reason.TOKEN_EXPIRED


def test_settings_reach_the_verifier(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        database_url="postgresql+asyncpg://unused/db",
        data_dir=tmp_path,
        jwt_hs256_secret=SECRET,
        jwt_leeway_seconds=1,
        jwt_max_lifetime_seconds=3600,
    )
    tokens = resolve_token_settings(settings)
    assert tokens is not None
    assert (tokens.leeway_seconds, tokens.max_lifetime_seconds) == (1, 3600)
    defaults = resolve_token_settings(
        Settings(database_url="sqlite+aiosqlite:///x.db", jwt_hs256_secret=SECRET)  # type: ignore[call-arg]
    )
    assert defaults is not None
    assert (defaults.leeway_seconds, defaults.max_lifetime_seconds) == (30, DAY)


# --- reserved subjects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sub", [SYSTEM.subject, "system:scheduler@replica-1", "SYSTEM:ekms", " system:ekms", "system:"]
)
async def test_a_reserved_system_subject_is_refused(make_verifier: MakeVerifier, sub: str) -> None:
    err = await refusal(make_verifier(), token(sub=sub))
    assert err.reason is Reason.UNAUTHENTICATED
    assert "reserved 'system:' prefix" in err.message


@pytest.mark.parametrize("sub", ["systemd", "my-system:ekms", "system-ekms", "ops:system:ekms"])
async def test_subjects_that_merely_mention_system_are_accepted(
    make_verifier: MakeVerifier, sub: str
) -> None:
    assert (await make_verifier().verify(token(sub=sub))).subject == sub


# --- re-checking a held token (gRPC streams) --------------------------------------------------


async def test_a_held_token_is_refused_once_exp_plus_leeway_is_past(
    make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = make_verifier(leeway_seconds=1)
    held = await verifier.verify_token(token(exp=NOW + 3))
    checks = verifier.stats.signature_checks
    clock.advance(3.9)
    verifier.check_still_valid(held)  # within exp + leeway
    clock.advance(0.1)
    with pytest.raises(Unauthenticated) as info:
        verifier.check_still_valid(held)
    assert info.value.reason is Reason.TOKEN_EXPIRED
    assert verifier.stats.signature_checks == checks  # the re-check is only a clock comparison


async def test_verify_token_serves_the_cached_window(make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(leeway_seconds=2)
    authorization = token(exp=NOW + 60)
    first = await verifier.verify_token(authorization)
    again = await verifier.verify_token(authorization)
    assert first is again
    assert first.not_after == NOW + 62
    assert verifier.stats.cache_hits == 1
