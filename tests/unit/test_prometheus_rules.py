"""The example PrometheusRule (deploy/monitoring/) is valid and each alert fires when it should
and only then: `promtool check rules` and `promtool test rules` (Debian package prometheus,
installed by scripts/test). The metric names it reads are the ones /metrics exposes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.infra.metrics import REGISTRY
from app.infra.telemetry import COLLECTOR

ROOT = Path(__file__).parents[2]
RULE = ROOT / "deploy/monitoring/prometheusrule.yaml"
TESTS = ROOT / "tests/fixtures/prometheus/rules_test.yaml"
ALERTS = {
    "EkmsExternalKeyNotUsable",
    "EkmsStatusSyncStale",
    "EkmsOpenKeyChainAlerts",
    "EkmsAuditBacklog",
    "EkmsNoSchedulerLeader",
    "EkmsSeveralSchedulerLeaders",
}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/test installs Debian's prometheus package")
        pytest.skip("promtool is not installed (Debian package prometheus, see scripts/test)")
    return found


def _rules() -> dict[str, object]:
    document = yaml.safe_load(RULE.read_text())
    assert document["kind"] == "PrometheusRule"
    spec: dict[str, object] = document["spec"]
    return spec


def test_every_alert_is_there_and_reads_only_metrics_ekms_exposes() -> None:
    rules = [r for group in _rules()["groups"] for r in group["rules"]]  # type: ignore[attr-defined]
    assert {r["alert"] for r in rules} == ALERTS
    exposed = {metric.name for metric in REGISTRY.collect()} | {
        metric.name for metric in COLLECTOR.collect()
    }
    for rule in rules:
        used = set(re.findall(r"\bekms_[a-z_]+", rule["expr"]))
        assert used and used <= exposed, (rule["alert"], used - exposed)


def test_promtool_checks_the_rules_and_their_unit_tests_pass(tmp_path: Path) -> None:
    promtool = _promtool()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules(), sort_keys=False))
    shutil.copy(TESTS, tmp_path / "rules_test.yaml")
    checked = subprocess.run(
        [promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "rules_test.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    unit_tests = yaml.safe_load(TESTS.read_text())["tests"]
    tested_alerts = {t["alertname"] for test in unit_tests for t in test["alert_rule_test"]}
    assert tested_alerts == ALERTS  # each alert has a case that fires and the rest stay quiet
