"""The Prometheus harness: a real server scrapes a real exporter, evaluates rules, and promtool
checks and unit-tests rule files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from devstack.prometheus import (
    PrometheusServer,
    Sample,
    ScrapeJob,
    check_rules,
    run_rule_tests,
    start_prometheus,
)

pytestmark = pytest.mark.integration


@dataclass
class Exporter:
    address: str  # host:port
    events: Counter


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    """A prometheus_client exporter on a free loopback port, with one counter."""
    registry = CollectorRegistry()
    events = Counter("harness_events", "Events the test exporter counted", registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield Exporter(f"127.0.0.1:{server.server_port}", events)
    server.shutdown()
    server.server_close()
    thread.join()


def value_is(expected: float) -> Callable[[list[Sample]], bool]:
    return lambda samples: len(samples) == 1 and samples[0].value == expected


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


def accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_prometheus_scrapes_a_live_exporter_and_reports_a_dead_one(
    prometheus: PrometheusServer, scrape: Callable[..., ScrapeJob], exporter: Exporter
) -> None:
    exporter.events.inc(3)
    live = scrape(exporter.address)
    dead = scrape(f"127.0.0.1:{closed_port()}")

    [sample] = await prometheus.api.wait_for(f"harness_events_total{live.selector}", value_is(3))
    assert sample.labels == {
        "__name__": "harness_events_total",
        "instance": exporter.address,
        "job": live.name,
    }
    # Scraped again and again, not once: a later increment shows up too.
    exporter.events.inc(2)
    await prometheus.api.wait_for(f"harness_events_total{live.selector}", value_is(5))

    [target] = await prometheus.api.wait_for_targets(dead.name, health="down")
    assert "connection refused" in target.last_error
    assert [sample.value for sample in await prometheus.api.query(f"up{dead.selector}")] == [0]


RULES = """\
groups:
  - name: harness
    rules:
      - record: harness:events:doubled
        expr: harness_events_total * 2
      - alert: HarnessEventsHigh
        expr: harness_events_total > 4
        labels: {severity: page}
        annotations: {summary: "{{ $value }} events on {{ $labels.instance }}"}
"""


async def test_rules_loaded_into_the_shared_prometheus_evaluate_what_it_scrapes(
    prometheus: PrometheusServer,
    scrape: Callable[..., ScrapeJob],
    exporter: Exporter,
    tmp_path: Path,
) -> None:
    job = scrape(exporter.address)
    (tmp_path / "rules.yml").write_text(RULES)
    prometheus.load_rules(tmp_path / "rules.yml")
    exporter.events.inc(2)

    await prometheus.api.wait_for(f"harness:events:doubled{job.selector}", value_is(4))
    # The alert rule ran in the same evaluation as the recording rule, on the same value.
    assert not [alert for alert in await prometheus.api.alerts() if alert.labels["job"] == job.name]

    exporter.events.inc(3)
    firing = f'ALERTS{{alertname="HarnessEventsHigh",alertstate="firing",job="{job.name}"}}'
    await prometheus.api.wait_for(firing)
    [alert] = [alert for alert in await prometheus.api.alerts() if alert.labels["job"] == job.name]
    assert (alert.name, alert.state, alert.labels["severity"]) == (
        "HarnessEventsHigh",
        "firing",
        "page",
    )
    assert alert.annotations["summary"] == f"5 events on {exporter.address}"


async def test_a_prometheus_of_its_own_scrapes_its_start_targets_and_stops_cleanly(
    exporter: Exporter, tmp_path: Path
) -> None:
    (tmp_path / "rules.yml").write_text(RULES)
    exporter.events.inc(21)
    server = start_prometheus([exporter.address], rule_files=[tmp_path / "rules.yml"])
    try:
        assert server.is_running()
        await server.api.wait_for('harness:events:doubled{job="jobwire"}', value_is(42))
    finally:
        server.stop()

    assert not server.is_running()
    assert server.process.returncode == 0  # SIGTERM: a clean shutdown, not a kill
    assert not accepts_connections(server.port)
    assert not server.workdir.exists()


def test_the_command_line_prints_the_url_of_a_ready_server_and_stops_on_sigterm() -> None:
    command = [sys.executable, "-m", "devstack.prometheus", "--target", "127.0.0.1:9"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("PROMETHEUS_URL=http://127.0.0.1:"), line
        with urllib.request.urlopen(line.removeprefix("PROMETHEUS_URL=") + "/-/ready") as ready:
            assert ready.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Prometheus stopped" in stderr


# -- promtool -----------------------------------------------------------------------------------

STALL_RULES = """\
groups:
  - name: harness
    rules:
      - alert: EventsStalled
        expr: rate(harness_events_total[1m]) == 0
        for: 2m
        labels: {severity: page}
        annotations: {summary: "no events on {{ $labels.instance }}"}
"""

# Five minutes of events, then none: firing once the rate has been 0 for two minutes.
STALL_TESTS = """\
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'harness_events_total{instance="a"}'
        values: '0+10x5 50x5'
    alert_rule_test:
      - eval_time: 4m
        alertname: EventsStalled
        exp_alerts: []
      - eval_time: 10m
        alertname: EventsStalled
        exp_alerts:
          - exp_labels: {severity: page, instance: a}
            exp_annotations: {summary: "no events on a"}
"""


def test_promtool_runs_rule_unit_tests_and_reports_a_wrong_expectation(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(STALL_RULES)
    (tmp_path / "rules_test.yml").write_text(STALL_TESTS)
    (tmp_path / "wrong_test.yml").write_text(STALL_TESTS.replace("eval_time: 4m", "eval_time: 9m"))

    passed = run_rule_tests(tmp_path / "rules_test.yml")
    assert passed.returncode == 0, passed.stdout
    assert "SUCCESS" in passed.stdout

    # At 9 minutes the alert fires, so the expectation of none must fail, naming the alert.
    failed = run_rule_tests(tmp_path / "wrong_test.yml")
    assert failed.returncode == 1, failed.stdout
    assert "FAILED" in failed.stdout
    assert "alertname: EventsStalled" in failed.stdout


def test_promtool_check_rules_accepts_good_rules_and_explains_a_broken_one(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(STALL_RULES)
    (tmp_path / "broken.yml").write_text(STALL_RULES.replace("[1m])", "[1m]"))

    good = check_rules(tmp_path / "good.yml")
    assert good.returncode == 0, good.stdout
    assert "SUCCESS: 1 rules found" in good.stdout

    broken = check_rules(tmp_path / "broken.yml")
    assert broken.returncode == 1, broken.stdout
    assert "parse error" in broken.stdout
