"""Resources that must stay flat while a process idles or serves: found by the soak, whose
idle ``ekms serve`` grew by ~13 KiB/s with no request at all (bench/soak.py, docs/reliability.md).
"""

from __future__ import annotations

import gc
import tracemalloc

from tests.e2e.rest_support import Rest
from tests.e2e.rest_support import rest_pg as rest_pg  # noqa: F401 - fixture

CHECKS = 1000


async def test_readiness_checks_do_not_fill_the_statement_cache(rest_pg: Rest) -> None:  # noqa: F811
    container = rest_pg.container
    cache = container.engine.sync_engine._compiled_cache
    for _ in range(50):
        await container.readiness()
    gc.collect()
    entries = len(cache) if cache is not None else 0
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(CHECKS):
        await container.readiness()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    added = (len(cache) if cache is not None else 0) - entries
    print(f"{CHECKS} readiness checks: +{grown / 1024:.0f} KiB traced, +{added} cached statements")
    assert added < 20, f"{added} new compiled statements for {CHECKS} identical checks"
    assert grown < 1024 * 1024
