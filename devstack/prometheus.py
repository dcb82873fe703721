"""A real Prometheus server on loopback that scrapes what the caller names, for the tests.

``start_prometheus()`` runs Debian's ``prometheus`` (2.42 on bookworm; installed with apt-get
on first use when we are root) on a free loopback port, with its data in a temporary
directory and a generated configuration: scrape and rule evaluation every second, targets
read from files (file-based service discovery) so that one server can be shared by every test
of a session and each test adds and removes its own targets::

    with running_prometheus() as prometheus:
        job = prometheus.scrape(["127.0.0.1:8080"], metrics_path="/metrics")
        await prometheus.api.wait_for_targets(job.name)
        [sample] = await prometheus.api.wait_for(
            f"jobwire_events_total{job.selector}", lambda found: bool(found) and found[0].value >= 3
        )

Each ``scrape()`` call is one scrape job: its targets carry the label ``job="<name>"``, so a
test's queries see its own series only, whatever else the shared server scrapes.

How soon a new target is scraped: within about 6 s, whatever ``refresh_interval`` says.
Prometheus notices the targets file at once (inotify), but its discovery manager passes target
updates on at most every 5 s, and the scrape manager applies them at most every 5 s
(``scrape/manager.go``: ``reloader``; 2.42 has no flag to shorten it). Both tick every 5 s
from the server's start, so a new target waits 0-5 s for the next tick, then up to 1 s for its
first scrape. Measured here: 5.8 s just after start (the worst case), 3-6 s in the tests; a
target known at start-up waits as long (5.0 s), so a server of one's own saves nothing. A test
can hide the wait by registering its target before the exporter is up (pick the port first):
a target that is down is simply scraped again every second.

The client (``PrometheusClient``, ``server.api``) is async: a test that runs jobwire in its
own event loop must keep that loop running while it waits, or the scrapes it waits for would
time out. Its HTTP calls (loopback, milliseconds) run in a worker thread.

Prometheus is given nothing outside this machine to talk to: no Alertmanager, no remote write,
and 2.42 has no update check or telemetry. It only dials the targets it is given.

``promtool`` (the same package) checks and unit-tests rule files: ``check_rules(path)`` and
``run_rule_tests(path)`` return its exit status and output.

    python -m devstack.prometheus --target 127.0.0.1:8080     # prints PROMETHEUS_URL=...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.apt import ensure_command
from devstack.servers import hold, kill_at_exit, terminate

__all__ = [
    "Alert",
    "PrometheusClient",
    "PrometheusQueryError",
    "PrometheusServer",
    "Sample",
    "ScrapeJob",
    "Target",
    "check_rules",
    "find_prometheus",
    "promtool",
    "run_rule_tests",
    "running_prometheus",
    "start_prometheus",
]

HOST = "127.0.0.1"
PACKAGE = "prometheus"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 3
# The poll of `wait_for`: scrapes come every second, so this adds at most 0.1 s to a wait.
POLL_S = 0.1
# All targets live in one scrape pool; the `job` label of each target group names the test.
SCRAPE_POOL = "devstack"
TARGETS_GLOB = "*.json"


# -- the answers of the HTTP API -------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One series of an instant query's answer: its labels (``__name__`` included) and value."""

    labels: Mapping[str, str]
    value: float
    timestamp: float

    @property
    def name(self) -> str:
        return self.labels.get("__name__", "")


@dataclass(frozen=True)
class Target:
    """A scrape target as ``/api/v1/targets`` reports it; ``health`` is up, down or unknown."""

    job: str
    scrape_url: str
    health: str
    last_error: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Alert:
    """An alert of a loaded alerting rule, ``pending`` (its ``for`` not yet over) or ``firing``."""

    name: str
    state: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    value: float


class PrometheusQueryError(ValueError):
    """Prometheus refused a query (bad PromQL, an unknown function...); the message says why."""


# -- the client --------------------------------------------------------------------------------


class PrometheusClient:
    """Prometheus's HTTP API (``/api/v1``) as typed, awaitable calls."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    async def query(self, expr: str) -> list[Sample]:
        """An instant query (``/api/v1/query``) evaluated now.

        A vector answers one ``Sample`` per series, a scalar one ``Sample`` without labels.
        A range vector (``metric[1m]``) is refused: wrap it in a function (``rate``,
        ``max_over_time``...) to get one value per series.
        """
        data = await self._get("/api/v1/query", {"query": expr})
        kind, result = data["resultType"], data["result"]
        if kind == "vector":
            return [
                Sample(dict(item["metric"]), float(item["value"][1]), float(item["value"][0]))
                for item in result
            ]
        if kind == "scalar":
            return [Sample({}, float(result[1]), float(result[0]))]
        raise PrometheusQueryError(
            f"{expr!r} is a {kind}, not a vector or scalar: wrap a range selector in a "
            "function such as rate(), increase() or max_over_time()"
        )

    async def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[Sample]], bool] = bool,
        timeout_s: float = 30.0,
    ) -> list[Sample]:
        """Query ``expr`` until ``predicate`` holds for the answer (by default: not empty).

        Returns the answer that satisfied it. After ``timeout_s`` an ``AssertionError`` shows
        the last answer and every target that is not up (with the error of its last scrape),
        which is usually why a value never arrived.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            samples = await self.query(expr)
            if predicate(samples):
                return samples
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{expr} did not reach the expected value within {timeout_s:g} s; "
                    f"last answer: {_show(samples)}; {await self._target_report()}"
                )
            await asyncio.sleep(POLL_S)

    async def targets(self) -> list[Target]:
        """Every active target with the health of its last scrape."""
        data = await self._get("/api/v1/targets", {"state": "active"})
        return [
            Target(
                job=item["labels"].get("job", ""),
                scrape_url=item["scrapeUrl"],
                health=item["health"],
                last_error=item["lastError"],
                labels=dict(item["labels"]),
            )
            for item in data["activeTargets"]
        ]

    async def wait_for_targets(
        self, job: str, health: str = "up", timeout_s: float = 30.0
    ) -> list[Target]:
        """Wait until Prometheus has the targets of ``job`` and all of them have ``health``.

        ``up`` means one scrape succeeded: its samples are in the database. Allow for the
        ~6 s that Prometheus takes to start scraping a new target (see the module's doc).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            found = [target for target in await self.targets() if target.job == job]
            if found and all(target.health == health for target in found):
                return found
            if time.monotonic() >= deadline:
                shown = ", ".join(_show_target(target) for target in found) or "none yet"
                raise AssertionError(
                    f"the targets of job {job!r} were not all {health} within {timeout_s:g} s: "
                    f"{shown}"
                )
            await asyncio.sleep(POLL_S)

    async def alerts(self) -> list[Alert]:
        """The alerts of the loaded alerting rules that are pending or firing now."""
        data = await self._get("/api/v1/alerts", {})
        return [
            Alert(
                name=item["labels"].get("alertname", ""),
                state=item["state"],
                labels=dict(item["labels"]),
                annotations=dict(item.get("annotations") or {}),
                value=float(item["value"]),
            )
            for item in data["alerts"]
        ]

    async def _target_report(self) -> str:
        try:
            targets = await self.targets()
        except (OSError, PrometheusQueryError) as error:
            return f"the targets could not be read: {error}"
        unhealthy = [target for target in targets if target.health != "up"]
        if not targets:
            return "Prometheus has no targets yet"
        if not unhealthy:
            return f"all {len(targets)} targets are up"
        return "targets not up: " + ", ".join(_show_target(target) for target in unhealthy)

    async def _get(self, path: str, params: Mapping[str, str]) -> Any:
        return await asyncio.to_thread(self._get_blocking, path, params)

    def _get_blocking(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            # 400 (bad PromQL) and 422 (cannot execute) carry {"error": ...} that says why.
            try:
                reason = json.load(error).get("error", error.reason)
            except ValueError:
                reason = error.reason
            raise PrometheusQueryError(f"{path} {dict(params)}: {reason}") from None
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{path} {dict(params)}: {body.get('error', body)}")
        return body["data"]


def _show(samples: list[Sample], limit: int = 5) -> str:
    if not samples:
        return "no series"
    shown = [f"{_selector(sample.labels)} {sample.value:g}" for sample in samples[:limit]]
    more = f" (+{len(samples) - limit} more)" if len(samples) > limit else ""
    return "; ".join(shown) + more


def _show_target(target: Target) -> str:
    error = f" ({target.last_error})" if target.last_error else ""
    return f"{target.scrape_url} {target.health}{error}"


def _selector(labels: Mapping[str, str]) -> str:
    name = labels.get("__name__", "")
    pairs = ",".join(
        f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()) if key != "__name__"
    )
    return f"{name}{{{pairs}}}"


# -- the server ----------------------------------------------------------------------------


@dataclass(eq=False)
class ScrapeJob:
    """Targets one test asked Prometheus to scrape; their series carry ``job="<name>"``."""

    name: str
    targets: tuple[str, ...]
    metrics_path: str
    file: Path = field(repr=False)

    @property
    def selector(self) -> str:
        """``{job="<name>"}``, to append to a metric name in a query."""
        return f"{{job={json.dumps(self.name)}}}"

    def remove(self) -> None:
        """Stop scraping these targets (within ~6 s; their series then go stale)."""
        self.file.unlink(missing_ok=True)


@dataclass(eq=False)
class PrometheusServer:
    """A running Prometheus; ``api`` queries it, ``scrape`` adds targets, ``stop`` ends it."""

    url: str
    workdir: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path = field(repr=False)
    rule_files: list[Path] = field(default_factory=list, repr=False)
    owns_workdir: bool = field(default=False, repr=False)
    api: PrometheusClient = field(init=False, repr=False)
    scrape_interval: str = field(default="1s", repr=False)
    evaluation_interval: str = field(default="1s", repr=False)
    _reload_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.api = PrometheusClient(self.url)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def targets_dir(self) -> Path:
        return self.workdir / "targets"

    def scrape(
        self,
        targets: Sequence[str],
        metrics_path: str = "/metrics",
        job: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> ScrapeJob:
        """Have Prometheus scrape ``targets`` (``host:port``) at ``metrics_path``, every second.

        ``job`` names the scrape job (the ``job`` label of every series scraped from these
        targets); one is made up when not given. Replaces an earlier job of the same name.
        ``labels`` are added to every series too. Scraping starts within ~6 s; await
        ``api.wait_for_targets(job.name)`` to know that a scrape has succeeded.
        """
        return _write_targets(self.targets_dir, targets, metrics_path, job, labels)

    @contextlib.contextmanager
    def scraping(
        self,
        targets: Sequence[str],
        metrics_path: str = "/metrics",
        job: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Iterator[ScrapeJob]:
        """``scrape`` for the length of a with-block."""
        scrape_job = self.scrape(targets, metrics_path, job, labels)
        try:
            yield scrape_job
        finally:
            scrape_job.remove()

    def load_rules(self, *paths: Path, timeout_s: float = 15.0) -> None:
        """Add rule files (recording and alerting rules) and reload Prometheus to use them.

        Each file is checked with ``promtool check rules`` first, so a mistake is reported
        with promtool's explanation rather than as a failed reload. Returns once
        ``/api/v1/rules`` lists the groups of every file (a file must hold at least one).
        Rules evaluate every second; ``api.alerts()`` shows their alerts.
        """
        for path in paths:
            checked = check_rules(path)
            if checked.returncode != 0:
                raise RuntimeError(f"promtool check rules {path} failed:\n{checked.stdout}")
        with self._reload_lock:
            for path in paths:
                if path.resolve() not in self.rule_files:
                    self.rule_files.append(path.resolve())
            _write_config(
                self.workdir, self.rule_files, self.scrape_interval, self.evaluation_interval
            )
            log_offset = self.log_path.stat().st_size
            self.process.send_signal(signal.SIGHUP)
        wanted = {str(path.resolve()) for path in paths}
        deadline = time.monotonic() + timeout_s
        while True:
            loaded = {group["file"] for group in _get_json(self.url, "/api/v1/rules")["groups"]}
            if wanted <= loaded:
                return
            if "Error reloading config" in _read_from(self.log_path, log_offset):
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        raise RuntimeError(
            f"Prometheus did not load the rules of {', '.join(sorted(wanted - loaded))} "
            f"within {timeout_s:g} s (does each file hold a group?); its log:\n"
            + _tail(_read_from(self.log_path, log_offset))
        )

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (a clean shutdown takes milliseconds), SIGKILL after 10 s; the temporary
        workdir is removed, a workdir the caller gave is kept with the log."""
        terminate(self.process, STOP_TIMEOUT_S)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def find_prometheus() -> Path:
    """The ``prometheus`` binary, installed from Debian's package first when missing."""
    return ensure_command("prometheus", PACKAGE)


def start_prometheus(
    targets: Sequence[str] = (),
    *,
    metrics_path: str = "/metrics",
    job: str = "jobwire",
    rule_files: Iterable[Path] = (),
    workdir: Path | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    timeout_s: float = READY_TIMEOUT_S,
) -> PrometheusServer:
    """Start Prometheus on a free loopback port; returns once ``/-/ready`` answers 200.

    ``targets`` (``host:port``), if any, are scraped at ``metrics_path`` as job ``job``;
    ``scrape()`` adds more at any time. ``workdir`` holds the configuration, ``targets/``,
    ``data/`` and ``prometheus.log`` (a temporary directory, removed on ``stop``, when None).
    Raises ``RuntimeError`` with the end of Prometheus's log when it does not come up.
    """
    binary = find_prometheus()
    owns = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="jobwire-prometheus-")) if workdir is None else workdir
    workdir = workdir.resolve()
    (workdir / "targets").mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    log_path = workdir / "prometheus.log"
    rules = [Path(path).resolve() for path in rule_files]
    _write_config(workdir, rules, scrape_interval, evaluation_interval)
    if targets:
        _write_targets(workdir / "targets", targets, metrics_path, job, None)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = _free_port()
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        server = PrometheusServer(
            url=f"http://{HOST}:{port}",
            workdir=workdir,
            process=_launch(binary, workdir, port, log_path),
            log_path=log_path,
            rule_files=rules,
            owns_workdir=owns,
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
        )
        kill_at_exit(server.process)
        try:
            _wait_ready(server, timeout_s)
            return server
        except RuntimeError:
            server.process.kill()
            server.process.wait()
            log = _read_from(log_path, log_offset)
            # The port was free when picked but taken before Prometheus bound it.
            if "address already in use" in log and attempt < PORT_ATTEMPTS:
                continue
            raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_prometheus(
    targets: Sequence[str] = (),
    *,
    metrics_path: str = "/metrics",
    job: str = "jobwire",
    rule_files: Iterable[Path] = (),
    workdir: Path | None = None,
) -> Iterator[PrometheusServer]:
    """``start_prometheus`` for the length of a with-block, stopped however the block ends."""
    server = start_prometheus(
        targets, metrics_path=metrics_path, job=job, rule_files=rule_files, workdir=workdir
    )
    try:
        yield server
    finally:
        server.stop()


def _launch(binary: Path, workdir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    config = workdir / "prometheus.yml"
    command = [
        str(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={HOST}:{port}",
        # The defaults (/etc/prometheus/...) exist only with the package's files; nothing
        # here uses the console templates, so point them at the workdir.
        f"--web.console.templates={workdir / 'consoles'}",
        f"--web.console.libraries={workdir / 'console_libraries'}",
    ]
    with log_path.open("ab") as log:
        log.write(f"== starting: {' '.join(command)}\n".encode())
        log.flush()
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            # Its own session: a terminal's Ctrl-C reaches us, and we stop Prometheus in order.
            start_new_session=True,
        )


def _write_config(
    workdir: Path, rule_files: Iterable[Path], scrape_interval: str, evaluation_interval: str
) -> None:
    # JSON is YAML, so the configuration needs no YAML library.
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": SCRAPE_POOL,
                "file_sd_configs": [
                    {
                        "files": [str(workdir / "targets" / TARGETS_GLOB)],
                        # inotify usually sees a change at once; this is the fallback.
                        "refresh_interval": "1s",
                    }
                ],
            }
        ],
    }
    _write_atomically(workdir / "prometheus.yml", json.dumps(config, indent=2))


def _wait_ready(server: PrometheusServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"Prometheus exited (status {server.process.returncode}) before it was ready; "
                f"the end of {server.log_path}:\n{_tail(_read_from(server.log_path, 0))}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # not listening yet, or 503 while the database opens
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"Prometheus was not ready within {timeout_s:g} s; "
                f"the end of {server.log_path}:\n{_tail(_read_from(server.log_path, 0))}"
            )
        time.sleep(0.02)


def _get_json(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}{path}", timeout=10) as response:
        return json.load(response)["data"]


def _write_targets(
    targets_dir: Path,
    targets: Sequence[str],
    metrics_path: str,
    job: str | None,
    labels: Mapping[str, str] | None,
) -> ScrapeJob:
    if not targets:
        raise ValueError("scrape() needs at least one host:port target")
    for target in targets:
        if "/" in target or ":" not in target:
            raise ValueError(f"{target!r} is not host:port; give the path as metrics_path=")
    if not metrics_path.startswith("/"):
        raise ValueError(f"metrics_path must start with '/': {metrics_path!r}")
    name = job or f"job-{os.urandom(4).hex()}"
    group_labels = {**(labels or {}), "job": name, "__metrics_path__": metrics_path}
    file = targets_dir / _targets_file_name(name)
    _write_atomically(file, json.dumps([{"targets": list(targets), "labels": group_labels}]))
    return ScrapeJob(name=name, targets=tuple(targets), metrics_path=metrics_path, file=file)


def _targets_file_name(job: str) -> str:
    # Readable, and distinct for jobs whose names differ only in characters a file name drops.
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", job)[:60]
    return f"{readable}-{hashlib.sha256(job.encode()).hexdigest()[:8]}.json"


def _write_atomically(path: Path, text: str) -> None:
    # Prometheus must never read half a file: write beside it under a name its glob
    # (*.json) does not match, then rename over it.
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# -- promtool ---------------------------------------------------------------------------------


def promtool() -> Path:
    """The ``promtool`` binary (Debian's ``prometheus`` package ships it), installed if missing."""
    return ensure_command("promtool", PACKAGE)


def check_rules(*paths: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check rules``: exit status 0 when the files are valid; ``stdout`` has its
    whole output (stderr included), which names the rule and the mistake otherwise."""
    return _promtool("check", "rules", *paths)


def run_rule_tests(*paths: Path) -> subprocess.CompletedProcess[str]:
    """``promtool test rules``: runs the rule unit tests in ``paths`` (each names its
    ``rule_files``, relative to itself); exit status 0 when all pass, the failures in
    ``stdout`` otherwise (expected and got, per alert)."""
    return _promtool("test", "rules", *paths)


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    if len(args) <= 2:
        raise ValueError(f"promtool {' '.join(map(str, args))} needs at least one file")
    return subprocess.run(
        [str(promtool()), *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        timeout=120,
    )


# -- python -m devstack.prometheus -------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.prometheus",
        description="Run Prometheus on loopback, scraping the given targets, until Ctrl-C.",
    )
    parser.add_argument(
        "--target", action="append", default=[], help="host:port to scrape (repeatable)"
    )
    parser.add_argument("--metrics-path", default="/metrics", help="default: /metrics")
    parser.add_argument(
        "--rules", action="append", default=[], type=Path, help="a rule file (repeatable)"
    )
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def announce(server: PrometheusServer) -> None:
        sys.stderr.write(
            f"jobwire: Prometheus on {server.url}, ready in {time.monotonic() - started:.2f} s, "
            f"data in {server.workdir}; Ctrl-C stops it\n"
        )
        # stdout carries only the setting, so `... | head -1` style use works.
        print(f"PROMETHEUS_URL={server.url}", flush=True)

    return hold(
        "Prometheus",
        lambda: start_prometheus(
            args.target,
            metrics_path=args.metrics_path,
            rule_files=args.rules,
            workdir=args.workdir,
        ),
        announce,
        lambda server: _tail(_read_from(server.log_path, 0)),
    )


if __name__ == "__main__":
    sys.exit(main())
