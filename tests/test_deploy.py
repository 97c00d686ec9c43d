"""What ships in deploy/ for operators, checked with the real tools: the alerting rules with
`promtool check rules` and their unit tests with `promtool test rules` (Debian's `prometheus`
package, which `.ci/run` installs)."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from tests.browser import require
from tests.db import ROOT

RULES = ROOT / "deploy" / "prometheus"


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        require("no promtool: install Prometheus (Debian/Ubuntu: `apt-get install prometheus`)")
    assert promtool is not None
    done = subprocess.run(
        [promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_alert_rules_are_valid() -> None:
    assert "SUCCESS: 7 rules found" in _promtool("check", "rules", "alerts.yml")


def test_alert_rules_fire_when_they_should() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "alerts.test.yml")


def test_every_alert_has_a_unit_test_and_a_runbook_entry() -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((RULES / "alerts.test.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    assert names == tested
    operations = (ROOT / "docs" / "operations.md").read_text()
    for name in names:
        assert f"`{name}`" in operations, name
