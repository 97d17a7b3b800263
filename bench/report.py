"""Ratios, targets, a text table and the chart of one bench run.

uv run python -m bench.report bench/results/results.json   # re-render a run's report
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LOOP_HAD_CORE_MS_PER_S = 100.0


def _median(values: Any) -> float | None:
    found = list(values)
    return float(np.median(found)) if found else None


def _case(results: dict[str, Any], name: str, workers: int = 1) -> dict[str, Any] | None:
    for case in results["cases"]:
        if case["case"] == name and case["workers"] == workers:
            return case
    return None


def _inproc(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((r for r in results["inproc"] if r["case"] == name), None)


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _batch_name(results: dict[str, Any], op: str) -> str:
    return f"grpc.{op}_batch.{results['plan']['batch_items']}x64"


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Every comparison the issue asks for, as ratios within this run.

    - ``unary_vs_echo``: ops/s of a unary Crypto call / ops/s of Echo, same clients, same
      concurrency, from each case's best round; ``..._median`` from the medians,
      ``..._quiet`` from the medians of the quiet rounds (None without any);
      ``..._cpu`` from server CPU per call (echo µs / call µs, medians), which does not
      depend on whether the clients or the server saturated first.
    - ``decrypt_batch_vs_aes_gcm_per_core``: DecryptBatch fields per server CPU-second / raw
      AES-GCM decrypts per CPU-second (64 B); ``encrypt_batch_vs_aes_gcm_per_core`` the same
      for EncryptBatch and raw encrypts.
    - ``stream_groups_vs_one_item``: items per server CPU-second of a stream whose messages
      carry ``group_items`` items / of the one-item-per-message stream (``encrypt``,
      ``decrypt``).
    - ``per_field_vs_aws_sdk``: AWS Encryption SDK CPU µs per value / ekms server CPU µs per
      field (> 1: ekms is faster per field); ``..._incl_client`` adds the load generator's CPU
      per field to ekms' side.
    - ``workers_2_vs_1``: ops/s with ``--workers 2`` / with 1; ``..._per_core`` the same per
      server CPU-second; ``..._worker_cpu_split`` the CPU seconds of each worker (balance).
    - ``strict_vs_buffered``: items/s of ``<case>@strict`` (``EKMS_AUDIT_MODE=strict``) / items/s
      of the same case on the buffered server, best rounds (``..._median``: medians), and the
      p99 latency of each (``..._p99_ms``: [buffered, strict]).
    """
    out: dict[str, Any] = {}
    echo = _case(results, "grpc.echo.64")
    unary: dict[str, Any] = {}
    for name in ("encrypt.64", "decrypt.64", "encrypt.1024", "decrypt.1024"):
        case = _case(results, f"grpc.{name}")
        if echo and case:
            unary[name] = _div(case["ops_per_s"], echo["ops_per_s"])
            unary[f"{name}_median"] = _div(case["ops_per_s_median"], echo["ops_per_s_median"])
            unary[f"{name}_quiet"] = _div(case["ops_per_s_quiet"], echo["ops_per_s_quiet"])
            unary[f"{name}_cpu"] = _div(echo["server_cpu_us_per_op"], case["server_cpu_us_per_op"])
            # The same, round by round (Echo and the call ran seconds apart, under the same
            # neighbours): the median of those ratios moves less with the host's load.
            per_round = [
                e["server_cpu_us_per_field"] / c["server_cpu_us_per_field"]
                for e, c in zip(echo["per_round"], case["per_round"], strict=False)
                if e["server_cpu_us_per_field"] and c["server_cpu_us_per_field"]
            ]
            unary[f"{name}_cpu_rounds"] = float(np.median(per_round)) if per_round else None
    out["unary_vs_echo"] = unary
    echo_stream = _case(results, "grpc.echo_stream.64")
    streams: dict[str, Any] = {}
    for op in ("encrypt", "decrypt"):
        case = _case(results, f"grpc.{op}_stream.64")
        if echo_stream and case:
            streams[op] = _div(case["fields_per_s"], echo_stream["fields_per_s"])
            streams[f"{op}_cpu"] = _div(
                echo_stream["server_cpu_us_per_field"], case["server_cpu_us_per_field"]
            )
    out["stream_vs_echo_stream"] = streams
    for op in ("decrypt", "encrypt"):
        batch = _case(results, _batch_name(results, op))
        aes = _inproc(results, f"aes_gcm.{op}.64")
        if batch and aes:
            out[f"{op}_batch_vs_aes_gcm_per_core"] = _div(
                aes["cpu_us_per_op"], batch["server_cpu_us_per_field"]
            )
    groups: dict[str, Any] = {}
    per_message = results["plan"].get("group_items")
    for op in ("encrypt", "decrypt"):
        one = _case(results, f"grpc.{op}_stream.64")
        many = _case(results, f"grpc.{op}_stream.{per_message}x64")
        if one and many:
            groups[op] = _div(one["server_cpu_us_per_field"], many["server_cpu_us_per_field"])
            groups[f"{op}_throughput"] = _div(many["fields_per_s"], one["fields_per_s"])
    out["stream_groups_vs_one_item"] = groups
    vs_sdk: dict[str, Any] = {}
    for op in ("encrypt", "decrypt"):
        sdk = _inproc(results, f"aws_sdk.{op}.64")
        for kind, name in (("batch", _batch_name(results, op)), ("stream", f"grpc.{op}_stream.64")):
            case = _case(results, name)
            if not (sdk and case and case["fields"]):
                continue
            vs_sdk[f"{op}_{kind}"] = _div(sdk["cpu_us_per_op"], case["server_cpu_us_per_field"])
            client_us = case["client_cpu_cores"] * case["window_s"] / case["fields"] * 1e6
            vs_sdk[f"{op}_{kind}_incl_client"] = _div(
                sdk["cpu_us_per_op"], (case["server_cpu_us_per_field"] or 0) + client_us
            )
            vs_sdk[f"{op}_{kind}_throughput"] = _div(case["fields_per_s"], sdk["ops_per_s"])
    out["per_field_vs_aws_sdk"] = vs_sdk
    scaling: dict[str, Any] = {}
    for name in ("grpc.echo.64", "grpc.encrypt.64", "grpc.decrypt.64"):
        one, two = _case(results, name, 1), _case(results, name, 2)
        if one and two:
            scaling[name] = _div(two["ops_per_s"], one["ops_per_s"])
            scaling[f"{name}_server_cores"] = [one["server_cores"], two["server_cores"]]
            # Work per server CPU-second with 2 workers / with 1: ~1 means the workers add no
            # overhead, so throughput grows with the cores the host can give them.
            scaling[f"{name}_per_core"] = _div(
                one["server_cpu_us_per_op"], two["server_cpu_us_per_op"]
            )
            split = [c for c in two["server_cpu_split"][1:] if c is not None]
            scaling[f"{name}_worker_cpu_split"] = split
    out["workers_2_vs_1"] = scaling
    strict: dict[str, Any] = {}
    for case in results["cases"]:
        name = case["case"]
        if not name.endswith("@strict"):
            continue
        base = _case(results, name.removesuffix("@strict"), 1)
        if base:
            key = name.removesuffix("@strict")
            strict[key] = _div(case["fields_per_s"], base["fields_per_s"])
            strict[f"{key}_median"] = _div(case["fields_per_s_median"], base["fields_per_s_median"])
            strict[f"{key}_p99_ms"] = [base["p99_ms"], case["p99_ms"]]
    out["strict_vs_buffered"] = strict
    half: dict[str, Any] = {}
    for name in ("grpc.encrypt.64", "grpc.decrypt.64", "grpc.encrypt.64[B]", "grpc.decrypt.64[B]"):
        base, _, variant = name.partition("[")
        case = _case(results, f"{base}@50%" + (f"[{variant}" if variant else ""))
        if case:
            # Where the tail goes: waiting for a core (the event-loop threads of the server
            # and of the clients), the rest of the host's load, the server's GC.
            half[name] = {
                "p50_ms": case["p50_ms"],
                "p99_ms": case["p99_ms"],
                "p99_ms_best_round": min(r["p99_ms"] for r in case["per_round"]),
                # The rounds in which the server's event loop waited for a core less than a
                # tenth of the time: the p99 the server gives when the host leaves it a core.
                "p99_ms_loop_had_core": _median(
                    r["p99_ms"]
                    for r in case["per_round"]
                    if (r.get("server_loop_runq_ms_per_s") or 0.0) < LOOP_HAD_CORE_MS_PER_S
                ),
                "rate": case["rate_target"],
                "other_cores": case["other_cores"],
                "server_loop_runq_ms_per_s": case.get("server_loop_runq_ms_per_s"),
                "client_loop_runq_ms_per_s": case.get("client_loop_runq_ms_per_s"),
                "gc_full_per_s": case.get("gc_full_per_s"),
                "gc_over_1ms_per_s": case.get("gc_over_1ms_per_s"),
            }
    out["half_load"] = half
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    r = results["ratios"]
    rows: list[dict[str, Any]] = []

    def add(name: str, goal: str, value: Any, met: bool | None) -> None:
        rows.append({"target": name, "goal": goal, "value": value, "met": met})

    unary = r.get("unary_vs_echo", {})
    for name in ("encrypt.64", "decrypt.64", "encrypt.1024", "decrypt.1024"):
        for key, how in (
            (name, "throughput, best round"),
            (f"{name}_cpu", "server CPU/call"),
            (f"{name}_cpu_rounds", "server CPU/call, median of per-round ratios"),
        ):
            value = unary.get(key)
            add(
                f"unary {name} vs echo ({how})",
                ">= 0.95",
                value,
                None if value is None else value >= 0.95,
            )
    for op, label in (("decrypt", "DecryptBatch"), ("encrypt", "EncryptBatch")):
        value = r.get(f"{op}_batch_vs_aes_gcm_per_core")
        add(
            f"{label} fields vs raw AES-GCM per server CPU-second",
            ">= 0.20",
            value,
            None if value is None else value >= 0.20,
        )
    for op in ("encrypt", "decrypt"):
        value = r.get("stream_groups_vs_one_item", {}).get(op)
        add(
            f"{op} stream, multi-item vs one-item messages, items per server CPU-second",
            ">= 3",
            value,
            None if value is None else value >= 3.0,
        )
    warm = [  # strict audit writes once per group commit by design: not "after warm-up"
        c
        for c in results["cases"]
        if c["workers"] == 1 and c["kms_calls"] is not None and c["group"] != "strict"
    ]
    kms = sum(c["kms_calls"] for c in warm)
    add("KMS calls after warm-up (all cases)", "0", kms, kms == 0)
    idle = results.get("idle", {}).get("db_queries_per_s")
    worst = max((c["db_queries_per_1k_fields"] or 0 for c in warm), default=None)
    add(
        "DB queries per 1k ops after warm-up (worst case; background only, see db_queries_per_s)",
        "0 per op",
        {"worst_per_1k": worst, "idle_per_s": idle},
        None,
    )
    for name, value in r.get("half_load", {}).items():
        add(f"p99 {name} at 50% of max", "<= 5 ms", value["p99_ms"], value["p99_ms"] <= 5.0)
        add(
            f"  where its tail goes ({name})",
            "runq ms/s srv, cli",
            [value["server_loop_runq_ms_per_s"], value["client_loop_runq_ms_per_s"]],
            None,
        )
        add(
            f"  p99 in the rounds whose server loop waited < 10 % for a core ({name})",
            "<= 5 ms",
            value["p99_ms_loop_had_core"],
            None if value["p99_ms_loop_had_core"] is None else value["p99_ms_loop_had_core"] <= 5,
        )
    for name in ("grpc.encrypt.64", "grpc.decrypt.64"):
        value = r.get("workers_2_vs_1", {}).get(name)
        add(
            f"--workers 2 vs 1: {name} (throughput)",
            ">= 1.5 (scales with cores)",
            value,
            None if value is None else value >= 1.5,
        )
    for name, value in r.get("strict_vs_buffered", {}).items():
        if not name.endswith(("_median", "_p99_ms")):
            add(f"strict vs buffered audit: {name} (items/s)", "measured", value, None)
    for name, value in r.get("per_field_vs_aws_sdk", {}).items():
        if name.endswith(("_incl_client", "_throughput")):
            continue
        add(
            f"{name} faster per field than the AWS Encryption SDK",
            "> 1",
            value,
            None if value is None else value > 1.0,
        )
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def text(results: dict[str, Any]) -> str:
    lines = [
        f"{'case':34s} {'w':>1s} {'ops/s':>9s} {'fields/s':>10s} {'p50 ms':>7s} {'p99 ms':>7s} "
        f"{'srv µs/fld':>10s} {'srv cores':>9s} {'cli cores':>9s} {'kms/1k':>6s} {'db/1k':>6s} "
        f"{'err':>4s} {'other':>5s}"
    ]
    for c in results["cases"]:
        lines.append(
            f"{c['case']:34s} {c['workers']:>1d} {c['ops_per_s']:9.0f} {c['fields_per_s']:10.0f} "
            f"{c['p50_ms']:7.2f} {c['p99_ms']:7.2f} {_fmt(c['server_cpu_us_per_field']):>10s} "
            f"{c['server_cores']:9.2f} {c['client_cpu_cores']:9.2f} "
            f"{_fmt(c['kms_calls_per_1k_fields']):>6s} {_fmt(c['db_queries_per_1k_fields']):>6s} "
            f"{c['errors']:4d} {c.get('other_cores', 0):5.2f}"
        )
    lines.append("")
    for r in results["inproc"]:
        lines.append(
            f"{r['case']:34s}   {r['ops_per_s']:9.0f} {'':10s} {r['p50_ms']:7.3f} "
            f"{r['p99_ms']:7.3f} {r['cpu_us_per_op']:10.2f}"
        )
    lines.append("")
    for t in results["targets"]:
        mark = {True: "met", False: "NOT met", None: "see notes"}[t["met"]]
        lines.append(f"{t['target']:70s} {t['goal']:>24s} {_fmt(t['value']):>12s}  {mark}")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = [c for c in results["cases"] if c["workers"] == 1 and c["group"] != "half_load"]
    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    names = [c["case"] for c in main]
    ax = axes[0][0]
    ax.barh(names, [c["fields_per_s"] for c in main], color="tab:blue")
    inproc = results["inproc"]
    ax.barh(
        [r["case"] + " (in-proc)" for r in inproc],
        [r["ops_per_s"] for r in inproc],
        color="tab:gray",
    )
    ax.set_xscale("log")
    ax.set_title("throughput: fields/s (ops/s for unary); in-process ceilings in grey")
    ax.invert_yaxis()
    ax = axes[0][1]
    ax.barh(names, [c["server_cpu_us_per_field"] or 0 for c in main], color="tab:orange")
    ax.barh(
        [r["case"] + " (in-proc)" for r in inproc],
        [r["cpu_us_per_op"] for r in inproc],
        color="tab:gray",
    )
    ax.set_xscale("log")
    ax.set_title("server CPU µs per field (in-process: CPU µs per value)")
    ax.invert_yaxis()
    ax = axes[1][0]
    lat = [c for c in results["cases"] if c["workers"] == 1]
    y = range(len(lat))
    ax.barh([c["case"] for c in lat], [c["p99_ms"] for c in lat], color="tab:red", label="p99")
    ax.barh([c["case"] for c in lat], [c["p50_ms"] for c in lat], color="tab:green", label="p50")
    ax.set_xscale("log")
    ax.set_title("latency per call (ms); streams: per item")
    ax.legend()
    ax.invert_yaxis()
    del y
    ax = axes[1][1]
    rows = [t for t in results["targets"] if isinstance(t["value"], int | float)]
    labels = [t["target"][:48] for t in rows]
    colors = ["tab:green" if t["met"] else "tab:red" for t in rows]
    ax.barh(labels, [t["value"] for t in rows], color=colors)
    ax.set_xscale("log")
    ax.set_title("targets (green: met)")
    ax.invert_yaxis()
    m = results["machine"]
    fig.suptitle(
        f"ekms bench {m['git_commit']} — {m['nproc']} × {m['cpu_model']}, Python {m['python']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="re-render the report of a bench run")
    parser.add_argument("results", type=Path, help="a results.json written by bench.run")
    path = parser.parse_args().results
    results = json.loads(path.read_text())
    results["ratios"] = ratios(results)
    results["targets"] = targets(results)
    path.write_text(json.dumps(results, indent=2) + "\n")
    chart(results, path.with_suffix(".png"))
    print(text(results))


if __name__ == "__main__":
    main()
