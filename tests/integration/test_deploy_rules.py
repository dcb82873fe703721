"""promtool (Debian's prometheus package, installed when missing) accepts deploy/prometheus/ and
its unit tests of the alert rules pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devstack.prometheus import check_rules, promtool, run_rule_tests

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def test_promtool_accepts_the_alert_rules() -> None:
    checked = check_rules(RULES / "alerts.yml")
    assert checked.returncode == 0, checked.stdout
    assert "SUCCESS: 9 rules found" in checked.stdout


def test_the_alert_rules_unit_tests_pass() -> None:
    tested = run_rule_tests(RULES / "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout
    assert "SUCCESS" in tested.stdout


def test_promtool_accepts_the_prometheus_configuration_of_docker_compose() -> None:
    checked = subprocess.run(
        [str(promtool()), "check", "config", str(RULES / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout
