"""Schemathesis (v4, its CLI) over the whole REST API of a real ``ekms serve``, from the
``/openapi.json`` it serves: once without a token, once with an admin + key manager + auditor
token (all phases, the stateful one included: links inferred from the schema chain calls).

Checks: no 5xx, every status documented, content types, response headers and bodies as the
schema says. Bounded for CI by examples per operation and a time budget per run;
``EKMS_SCHEMATHESIS_EXAMPLES`` and ``EKMS_SCHEMATHESIS_SECONDS`` raise them. The seed is
printed (``EKMS_SCHEMATHESIS_SEED`` replays one).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.rest_support import rest_app, settings_for
from tests.faults.support import (
    ADMIN_TOKEN,
    ApiWorld,
    EkmsProcess,
    OwnKms,
    ekms_env,
    running_processes,
)

EXAMPLES = int(os.environ.get("EKMS_SCHEMATHESIS_EXAMPLES", "6"))
SECONDS = int(os.environ.get("EKMS_SCHEMATHESIS_SECONDS", "16"))
SEED = int(os.environ.get("EKMS_SCHEMATHESIS_SEED", str(random.SystemRandom().randrange(1 << 30))))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)


def _run(node: EkmsProcess, workdir: Path, name: str, seconds: int, *extra: str) -> dict:
    report = workdir / f"{name}.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{node.url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES),
        "--max-time",
        str(seconds),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *extra,
    ]
    finished = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        command, cwd=workdir, capture_output=True, text=True, timeout=seconds + 120
    )
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    print(
        f"schemathesis {name}: {cases['generated']} cases, {cases['with_failures']} failing, "
        f"phases { ({k: v['status'] for k, v in summary['phases'].items()}) }, "
        f"stopped by {summary['stop_reason']}"
    )
    if summary["failures"] or summary["errors"] or finished.returncode != 0:
        print(finished.stdout[-20000:], finished.stderr[-4000:])
    return summary


@pytest.mark.timeout(2 * SECONDS + 240)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    pg_url: str, aws_env: str, own_kms: OwnKms, tmp_path: Path
) -> None:
    print(f"seed {SEED} (EKMS_SCHEMATHESIS_SEED to replay)")
    node = EkmsProcess(
        "api", ekms_env(pg_url, own_kms.url, aws_env, tmp_path / "data"), tmp_path / "ekms.log"
    )
    with running_processes(node):
        ApiWorld(node).build(own_kms.create_key())
        anonymous = _run(
            node,
            tmp_path,
            "anonymous",
            max(SECONDS // 3, 5),
            "--phases",
            "examples,coverage,fuzzing",
        )
        admin = _run(node, tmp_path, "admin", SECONDS, "-H", f"Authorization: Bearer {ADMIN_TOKEN}")
        assert node.process is not None and node.process.poll() is None, "ekms serve died"
        errors = [line for line in node.tail(200_000).splitlines() if "Traceback" in line]
    for summary in (anonymous, admin):
        assert summary["failures"] == [], summary["failures"]
        assert summary["errors"] == [], summary["errors"]
        assert summary["test_cases"]["generated"] > 0
    assert errors == [], "an unhandled exception reached the log"


async def test_endpoint_url_cannot_be_repointed_once_active(
    pg_url: str, moto_server: str, aws_env: str, kms_key: str, tmp_path: Path
) -> None:
    settings = settings_for(
        pg_url,
        tmp_path,
        kms_provider="aws",
        aws_endpoint_url=moto_server,
        allow_insecure_kms_endpoint=True,
        aws_region=aws_env,
    )
    async with rest_app(settings) as env:
        body = {"provider": "aws", "key_id": kms_key}
        assert (await env.call("PUT", "/api/v1/ekms/config", json=body)).status_code == 201
        for endpoint in ("http://127.0.0.1:9", "http://["):
            moved = await env.call(
                "PUT", "/api/v1/ekms/config", json={**body, "endpoint_url": endpoint}
            )
            assert moved.status_code in (409, 422), (endpoint, moved.status_code, moved.text)
