"""The verify bench at CI size: the chain it generates in SQL is the one ekms writes (verify
walks it without a break) and every checkpoint it signs is checked. Never a speed."""

from __future__ import annotations

import pytest

from bench.audit_verify import run

pytestmark = pytest.mark.postgres


async def test_the_sql_generated_chain_and_its_checkpoints_verify(postgres_admin_url: str) -> None:
    figures = await run(1_500, 500, admin_url=postgres_admin_url)
    assert figures["chain_ok"] and figures["full_ok"], figures["first_break"]
    assert figures["checkpoints"] == 3 and figures["rows"] == 1_500
