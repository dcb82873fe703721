"""What ships in deploy/ only asks for metrics jobwire has, named as Prometheus names them.

promtool checks the rules and runs their unit tests in tests/integration/test_deploy_rules.py;
a real Prometheus runs every dashboard query against a running jobwire in
tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from service.operations.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "jobwire.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\bjobwire_[a-z0-9_]+\b")


def exported() -> set[str]:
    metrics = Metrics()
    metrics.count_restarts({})
    return metrics.names()


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_dashboard_query_uses_only_metrics_jobwire_exports() -> None:
    names = exported()
    queries = dashboard_queries()
    assert len(queries) >= 20
    for query in queries:
        used = set(METRIC.findall(query))
        assert used, f"{query!r} uses no jobwire metric"
        assert used <= names, f"{query!r} uses {sorted(used - names)}, which jobwire lacks"


def test_every_alert_rule_uses_only_metrics_jobwire_exports() -> None:
    used = set(METRIC.findall(ALERTS.read_text()))
    assert used
    assert used <= exported(), sorted(used - exported())


def test_the_names_follow_prometheus_conventions() -> None:
    metrics = Metrics()
    families = [m for m in metrics.registry.collect() if m.name.startswith("jobwire_")]
    assert len(families) >= 20
    for family in families:
        assert re.fullmatch(r"jobwire_[a-z][a-z0-9_]*[a-z]", family.name), family.name
        assert family.documentation, f"{family.name} has no help text"
        assert not family.name.endswith("_total"), "prometheus_client adds _total itself"
        # Time in base units: seconds, never milliseconds.
        assert "_ms" not in family.name
        assert "millisecond" not in family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


def test_every_metric_is_documented_in_the_operations_guide() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    missing = sorted(
        name
        for name in exported()
        if name.startswith("jobwire_")
        and not name.endswith(("_bucket", "_sum", "_count"))
        and f"`{name}" not in guide
    )
    assert not missing, f"document these in docs/operations.md: {missing}"


def test_every_alert_rule_is_documented_in_the_operations_guide() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    alerts = re.findall(r"- alert: (\w+)", ALERTS.read_text())
    assert len(alerts) >= 6
    missing = [name for name in alerts if f"`{name}`" not in guide]
    assert not missing, f"document these in docs/operations.md: {missing}"
