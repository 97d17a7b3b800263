"""What a key access justification costs on the data plane, in-process (issue 17, item 4).

    uv run --frozen python -m bench.justification            # full: 1000-item batches
    uv run --frozen python -m bench.justification --items 100 --seconds 0.2   # a small size

``CryptoService`` on a real container (embedded SQLite, local KMS; never touched once warm),
the bench's module with a Track policy, CPU time (``time.process_time``) per item, best of 5
interleaved runs:

- ``none``: calls without a justification (today's path);
- ``same``: every call sends the same ``CODE:text`` (a service that states one reason);
- ``distinct``: every call sends another text, so each call is a new caller for the permit
  cache (its checks run once per call, as a first call's do): the worst case;
- ``parse``: ``justification_from`` alone, per call (the adapters' share).

Printed as ratios to ``none`` measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from bench import cases

_SECRET = "justification-bench-secret-0123456789abcdef"  # noqa: S105 - bench only


async def _best(
    fns: dict[str, Callable[[], Awaitable[int]]], seconds: float, repeats: int = 5
) -> dict[str, float]:
    """Best CPU µs per item of each, the runs interleaved (the shared machine's noise and any
    drift fall on every variant alike)."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        await fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            n, cpu0, t0 = 0, time.process_time(), time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                n += await fn()
            best[name] = min(best[name], (time.process_time() - cpu0) / n * 1e6)
    return best


async def measure(items: int, seconds: float) -> dict[str, float]:
    from app.application.crypto import Item
    from app.application.policies import PolicyInput, create_policy
    from app.application.targets import Target
    from app.bootstrap import running
    from app.domain.justification import justification_from, parse_justification
    from app.domain.values import AccessResult, Caller, Operation, TargetType
    from app.infra.settings import Settings

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            jwt_hs256_secret=_SECRET,  # type: ignore[arg-type]
            scheduler_enabled=False,
            log_level="WARNING",
        )
        async with running(settings) as container:
            from app.application.modules import ModuleInput, create_module

            admin = Caller("bench-admin", frozenset({"ekms.admin"}))
            ctx = container.ctx
            await create_module(ctx, admin, ModuleInput(cases.MODULE))
            grant = PolicyInput(
                TargetType.ROLE, cases.APP_ROLE, frozenset(Operation), AccessResult.TRACK
            )
            await create_policy(ctx, admin, cases.MODULE, grant)
            crypto = container.crypto
            caller = Caller("bench-app", frozenset({cases.APP_ROLE}))
            target = Target(module=cases.MODULE)
            plain = [Item(target, os.urandom(64), cases.context(i)) for i in range(items)]
            sealed = await crypto.encrypt_batch(caller, plain)
            batch = [
                Item(target, r.data or b"", it.context) for r, it in zip(sealed, plain, strict=True)
            ]
            same = replace(caller, justification=parse_justification("SYSTEM_OPERATION:nightly"))
            counter = iter(range(10**9))

            def run(pick: Callable[[], Caller], n: int) -> Callable[[], Awaitable[int]]:
                async def once() -> int:
                    await crypto.decrypt_batch(pick(), batch[:n])
                    return n

                return once

            def distinct() -> Caller:
                text = f"SYSTEM_OPERATION:job {next(counter)}"
                return replace(caller, justification=parse_justification(text))

            for size in (1, items):
                variants = {"none": lambda: caller, "same": lambda: same, "distinct": distinct}
                fns = {f"decrypt_batch.{size}.{k}": run(v, size) for k, v in variants.items()}
                results |= await _best(fns, seconds)
                await ctx.audit.flush()

            async def parse() -> int:
                for _ in range(1000):
                    justification_from(["CUSTOMER_INITIATED_SUPPORT:ticket 4711"])
                return 1000

            results |= await _best({"parse": parse}, seconds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=0.6)
    args = parser.parse_args()
    import uvloop

    results = uvloop.run(measure(args.items, args.seconds))
    for name, value in results.items():
        base = results.get(name.rsplit(".", 1)[0] + ".none")
        ratio = f"  x{value / base:5.2f} of none" if base and not name.endswith("none") else ""
        print(f"{name:36s} {value:8.2f} CPU µs per item{ratio}")


if __name__ == "__main__":
    main()
