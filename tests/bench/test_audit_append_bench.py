"""The two-replica append bench at CI size: both writer processes append to the one chain
(every row of both phases, warm-ups included, is on it) and verify finds it intact. Never a
speed."""

from __future__ import annotations

import pytest

from bench.audit_append import run

pytestmark = pytest.mark.postgres


def test_two_writer_processes_extend_one_intact_chain(postgres_admin_url: str) -> None:
    figures = run(3, 10, admin_url=postgres_admin_url)
    assert figures["ok"], figures["report"].first_break
    assert figures["checked"] == (1 + 3) * 10 * (1 + 2)  # warm-up + flushes, 1 then 2 writers
    assert figures["one"] > 0 and figures["two"] > 0
