"""A real Apache Kafka broker (KRaft, single node) on loopback, for the demo and the tests.

The broker's jars come from Maven Central the first time (through `mvn` and the pom next to
this file) and are cached in ``~/.cache/jobwire/kafka-<version>/lib`` (or ``$JOBWIRE_KAFKA_CACHE``);
later starts take a few seconds. Java 17+ and, for the first run, Maven must be installed.

    with running_kafka() as broker:
        create_topics(broker.bootstrap, ["jobs.postings"])
        ...

``start_kafka(sasl_users={"alice": "alice-secret"}, tls=True)`` adds listeners that need a
username and password (SASL with SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN), TLS, or both, as managed
Kafka services do; `KafkaBroker.listeners` says where each is. The default broker has only the
PLAINTEXT listener.

``python -m devstack.kafka [--port N] [--dir D] [--sasl-user NAME:PASSWORD] [--tls]`` runs one in
the foreground and prints ``KAFKA_BOOTSTRAP=127.0.0.1:PORT`` once it accepts requests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.servers import hold, kill_at_exit, terminate

if TYPE_CHECKING:
    from devstack.certificates import TlsMaterial

__all__ = [
    "KAFKA_VERSION",
    "SASL_MECHANISMS",
    "KafkaBroker",
    "create_topics",
    "create_topics_async",
    "ensure_jars",
    "running_kafka",
    "start_kafka",
]

KAFKA_VERSION = "3.9.1"
"""The kafka_2.13 artifact fetched; the pom's default ``kafka.version`` names the same."""

HOST = "127.0.0.1"
NODE_ID = 1
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
"""What the SASL listeners accept; every user given to `start_kafka` may use each of them."""
_SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# Kept to characters that need no quoting in server.properties, JAAS or kafka-storage's
# --add-scram syntax: these are throwaway credentials for a loopback broker.
_SASL_WORD = re.compile(r"[A-Za-z0-9_.-]+")

_POM = Path(__file__).with_name("kafka-pom.xml")
_MARKER = ".complete"
_JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    # C1 only: a dev broker starts faster and uses less CPU on small machines.
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_LOG4J = """\
# Written by devstack/kafka.py: everything to stdout, which goes to kafka.log next to this file.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
# The config dumps (hundreds of lines per start); "unknown config" warnings still show.
log4j.logger.org.apache.kafka.common.config.AbstractConfig=WARN
log4j.logger.org.apache.kafka.storage.internals.log.LogLoader=WARN
"""


# -- jars ------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where the jars live: ``$JOBWIRE_KAFKA_CACHE``, else ``~/.cache/jobwire/kafka-<version>``."""
    override = os.environ.get("JOBWIRE_KAFKA_CACHE")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jobwire" / f"kafka-{KAFKA_VERSION}"


def _cache_key() -> str:
    # A changed pom or version invalidates the cache, even under a fixed $JOBWIRE_KAFKA_CACHE.
    return f"{KAFKA_VERSION} {hashlib.sha256(_POM.read_bytes()).hexdigest()}\n"


def ensure_jars() -> Path:
    """The directory holding Kafka's jars, fetched with Maven on the first call only."""
    root = cache_dir()
    lib = root / "lib"
    marker = root / _MARKER
    key = _cache_key()
    if marker.is_file() and marker.read_text() == key and lib.is_dir():
        return lib
    root.mkdir(parents=True, exist_ok=True)
    # A lock, so that parallel test runs or a demo started alongside them fetch only once.
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == key and lib.is_dir():
            return lib
        marker.unlink(missing_ok=True)
        _fetch_jars(lib)
        marker.write_text(key)
    return lib


def _fetch_jars(lib: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(
            "Maven (mvn) is needed once, to fetch Kafka's jars from Maven Central: "
            "install it (apt-get install maven) or run devstack/install.sh"
        )
    shutil.rmtree(lib, ignore_errors=True)
    partial = lib.with_name(f"lib.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    sys.stderr.write(
        f"jobwire: fetching Kafka {KAFKA_VERSION} jars from Maven Central into {lib.parent} "
        "(first run only)\n"
    )
    sys.stderr.flush()
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(_POM),
        "dependency:copy-dependencies",
        f"-Dkafka.version={KAFKA_VERSION}",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    jars = list(partial.glob("kafka_2.13-*.jar")) if partial.is_dir() else []
    if result.returncode != 0 or not jars:
        shutil.rmtree(partial, ignore_errors=True)
        output = (result.stdout + result.stderr).strip().splitlines()
        raise RuntimeError(
            f"could not fetch Kafka's jars (mvn exited {result.returncode}): "
            + "\n".join(output[-30:])
        )
    partial.rename(lib)


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java 17+ is needed to run Kafka: install openjdk-17-jre-headless")
    return java


# -- the broker ------------------------------------------------------------------------------


@dataclass(eq=False)
class KafkaBroker:
    """One running broker+controller; `process` is replaced by `restart`."""

    bootstrap: str
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    owns_workdir: bool = field(default=False, repr=False)
    """A temporary directory made by `start_kafka`, removed by `stop`."""
    listeners: dict[str, str] = field(default_factory=dict)
    """Security protocol -> host:port: always PLAINTEXT (`bootstrap`), and SASL_PLAINTEXT,
    SSL and SASL_SSL when `start_kafka` was asked for them."""
    sasl_users: dict[str, str] = field(default_factory=dict, repr=False)
    """Name -> password of the users the SASL listeners accept."""
    tls: TlsMaterial | None = field(default=None, repr=False)
    """The CA (`tls.ca_file`) that signed the broker's certificate, and a client certificate
    for the SSL listener, which requires one; None without TLS listeners."""

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM), SIGKILL after 15 s; removes a temporary workdir."""
        terminate(self.process, STOP_TIMEOUT)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL now, as in a crash; the data directory stays for `restart`."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def restart(self, timeout: float = READY_TIMEOUT) -> None:
        """A new broker process on the same ports and data; returns once it accepts requests.

        A running broker is stopped gracefully first; after `kill` this is crash recovery.
        """
        terminate(self.process, STOP_TIMEOUT)
        self.process = _launch(self.workdir, self.log_path)
        kill_at_exit(self.process)
        _wait_ready(self, timeout)


def start_kafka(
    workdir: Path | None = None,
    port: int | None = None,
    *,
    timeout: float = READY_TIMEOUT,
    sasl_users: Mapping[str, str] | None = None,
    tls: bool = False,
) -> KafkaBroker:
    """Format (first time) and start a single-node KRaft broker; returns once it is ready.

    `workdir` holds server.properties, the data and ``kafka.log`` (a temporary directory, removed
    on `stop`, when None). Ports are free loopback ports unless `port` (the client port) is given.

    `sasl_users` (name -> password) adds a SASL_PLAINTEXT listener that accepts them with any of
    `SASL_MECHANISMS`; `tls` adds an SSL listener that requires a client certificate (as Aiven's
    does), and with `sasl_users` also a SASL_SSL listener (as Confluent Cloud's and MSK's).
    The certificates are made at start, by a CA of their own (`KafkaBroker.tls`). The broker's
    own listeners (controller, inter-broker) stay PLAINTEXT, as does `bootstrap`.
    """
    lib = ensure_jars()
    users = dict(sasl_users or {})
    for word in (*users, *users.values()):
        if not _SASL_WORD.fullmatch(word):
            raise ValueError(f"devstack SASL names and passwords use {_SASL_WORD.pattern} only")
    if port is None:
        port = _free_port()
    elif not _port_is_free(port):
        raise RuntimeError(f"cannot start Kafka on {HOST}:{port}: the port is in use")
    owns = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="jobwire-kafka-")) if workdir is None else workdir
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    taken = {port}
    controller_port = _free_port(avoid=taken)
    protocols = ["PLAINTEXT"]
    if users:
        protocols.append("SASL_PLAINTEXT")
    if tls:
        protocols.append("SSL")
        if users:
            protocols.append("SASL_SSL")
    listeners = {"PLAINTEXT": port}
    for protocol in protocols[1:]:
        listeners[protocol] = _free_port(avoid=taken)
    material = None
    if tls:
        from devstack.certificates import make_tls_material  # needs `cryptography`: only here

        material = make_tls_material(workdir / "tls", secrets.token_urlsafe(16))
    log_path = workdir / "kafka.log"
    (workdir / "server.properties").write_text(
        _server_properties(workdir, listeners, controller_port, users, material)
    )
    (workdir / "log4j.properties").write_text(_LOG4J)
    _format_storage(lib, workdir, log_path, users)
    broker = KafkaBroker(
        bootstrap=f"{HOST}:{port}",
        workdir=workdir,
        process=_launch(workdir, log_path),
        log_path=log_path,
        owns_workdir=owns,
        listeners={protocol: f"{HOST}:{p}" for protocol, p in listeners.items()},
        sasl_users=users,
        tls=material,
    )
    kill_at_exit(broker.process)
    try:
        _wait_ready(broker, timeout)
    except BaseException:
        broker.kill()  # the workdir stays, even a temporary one: its kafka.log tells why
        raise
    return broker


@contextlib.contextmanager
def running_kafka(
    workdir: Path | None = None,
    port: int | None = None,
    *,
    timeout: float = READY_TIMEOUT,
    sasl_users: Mapping[str, str] | None = None,
    tls: bool = False,
) -> Iterator[KafkaBroker]:
    """`start_kafka` for the length of a with-block, stopped however the block ends."""
    broker = start_kafka(workdir, port, timeout=timeout, sasl_users=sasl_users, tls=tls)
    try:
        yield broker
    finally:
        broker.stop()


def _free_port(avoid: set[int] | None = None) -> int:
    """A free loopback port not in `avoid`, which it joins (so several are all different)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if avoid is None:
            return port
        if port not in avoid:
            avoid.add(port)
            return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM binds
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _server_properties(
    workdir: Path,
    listeners: dict[str, int],
    controller_port: int,
    users: Mapping[str, str],
    tls: TlsMaterial | None,
) -> str:
    # Each listener is named after its security protocol; the default broker has PLAINTEXT only.
    client = ",".join(f"{protocol}://{HOST}:{port}" for protocol, port in listeners.items())
    protocol_map = ",".join(f"{protocol}:{protocol}" for protocol in listeners)
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{HOST}:{controller_port}",
        "listeners": f"{client},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": client,
        "listener.security.protocol.map": f"{protocol_map},CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(workdir / "data"),
        "num.partitions": "3",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        # 50 partitions (the default) make the first consumer group wait seconds for them.
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "5",
        "group.initial.rebalance.delay.ms": "0",
        # After a SIGKILL the restarted broker cannot register until the controller expires the
        # dead one's session (9 s by default); 3 s keeps crash-recovery tests quick.
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "750",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.retention.hours": "168",
        "log.segment.bytes": str(64 * 1024 * 1024),
        **_security_properties(listeners, users, tls),
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    return "# Written by devstack/kafka.py\n" + "\n".join(lines) + "\n"


def _security_properties(
    listeners: dict[str, int], users: Mapping[str, str], tls: TlsMaterial | None
) -> dict[str, str]:
    """SASL and TLS for the client listeners beyond PLAINTEXT (none for the default broker)."""
    settings: dict[str, str] = {}
    sasl = [protocol for protocol in listeners if protocol.startswith("SASL_")]
    if sasl:
        settings["sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
        # SCRAM users live in the cluster metadata (written by `kafka-storage format
        # --add-scram`); PLAIN users are listed in its login module.
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in users.items())
        for protocol in sasl:
            prefix = f"listener.name.{protocol.lower()}"
            for mechanism in _SCRAM_MECHANISMS:
                settings[f"{prefix}.{mechanism.lower()}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
            settings[f"{prefix}.plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            )
    if tls is not None:
        settings.update(
            {
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.location": str(tls.broker_keystore),
                "ssl.keystore.password": tls.keystore_password,
                "ssl.key.password": tls.keystore_password,
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(tls.broker_truststore),
                # The SSL listener authenticates clients by certificate (as Aiven does);
                # SASL_SSL by password, so no client certificate is asked for there.
                "listener.name.ssl.ssl.client.auth": "required",
            }
        )
    return settings


def _cluster_id() -> str:
    # Kafka's Uuid.toString(): 16 random bytes, URL-safe base64 without padding; never "-…".
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _classpath(lib: Path) -> str:
    return f"{lib}{os.sep}*"


def _jvm(lib: Path, workdir: Path) -> list[str]:
    return [
        _java(),
        *_JVM_OPTIONS,
        f"-Dlog4j.configuration={(workdir / 'log4j.properties').as_uri()}",
        f"-Dkafka.logs.dir={workdir}",
        "-cp",
        _classpath(lib),
    ]


def _format_storage(
    lib: Path, workdir: Path, log_path: Path, users: Mapping[str, str] | None = None
) -> None:
    if (workdir / "data" / "meta.properties").is_file():
        return  # formatted before: keep the data (and its cluster id)
    # KRaft has no ZooKeeper to hold SCRAM credentials before the broker runs: they go into the
    # first metadata records, at format time.
    scram = [
        f"--add-scram={mechanism}=[name={name},password={password}]"
        for name, password in (users or {}).items()
        for mechanism in _SCRAM_MECHANISMS
    ]
    command = [
        *_jvm(lib, workdir),
        "-Xms64m",  # the last -Xms wins: the tool needs little
        "kafka.tools.StorageTool",
        "format",
        "--ignore-formatted",
        f"--cluster-id={_cluster_id()}",
        "--config",
        str(workdir / "server.properties"),
        *scram,
    ]
    result = subprocess.run(command, capture_output=True, check=False)
    with log_path.open("ab") as log:
        log.write(b"== kafka-storage format\n" + result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(
            f"formatting Kafka's storage in {workdir} failed (exit {result.returncode}):\n"
            + (result.stdout + result.stderr).decode(errors="replace")[-4000:]
        )


def _launch(workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    lib = ensure_jars()
    command = [*_jvm(lib, workdir), "kafka.Kafka", str(workdir / "server.properties")]
    with log_path.open("ab") as log:
        log.write(f"== starting broker: {' '.join(command)}\n".encode())
        log.flush()
        # Its own session: a terminal's Ctrl-C reaches us, and we stop the broker in order.
        return subprocess.Popen(
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_ready(broker: KafkaBroker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while True:
        code = broker.process.poll()
        if code is not None:
            raise RuntimeError(
                f"Kafka exited with code {code} while starting; the end of {broker.log_path}:\n"
                + _tail(broker.log_path)
            )
        try:
            if any(node == NODE_ID for node, _, _ in _metadata_brokers(HOST, broker.port)):
                return
            last_error = "broker not yet in its own metadata"
        except (OSError, ValueError, struct.error) as exc:
            last_error = repr(exc)
        if time.monotonic() > deadline:
            broker.kill()
            raise RuntimeError(
                f"Kafka did not become ready at {broker.bootstrap} within {timeout:.0f} s "
                f"({last_error}); the end of {broker.log_path}:\n" + _tail(broker.log_path)
            )
        time.sleep(0.25)


def _tail(path: Path, lines: int = 30) -> str:
    """The log's errors (the cause is often far above the shutdown noise), then its last lines."""
    try:
        text = path.read_bytes()[-1024 * 1024 :].decode(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    errors: list[str] = []
    for i, line in enumerate(text):
        if " ERROR " in line or " FATAL " in line:
            errors.append(line)
            # and the exception that follows it, which usually names the cause
            if i + 1 < len(text) and not text[i + 1].startswith(("[", "\t", " ")):
                errors.append(text[i + 1])
    errors = errors[:16]
    parts = [*errors, "...", *text[-lines:]] if errors else text[-lines:]
    return "\n".join(parts)


def _metadata_brokers(host: str, port: int, timeout: float = 2.0) -> list[tuple[int, str, int]]:
    """The brokers listed by a Metadata v4 request: answers only once the broker serves clients.

    Metadata v4 (no topics, no auto-creation) is plain, non-flexible wire format and is
    supported by Kafka 1.0 through 4.x, so this needs no client library.
    """
    client_id = b"jobwire-devstack"
    correlation_id = 7
    header = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body = struct.pack(">i?", 0, False)  # topics: empty array (none); allow_auto_topic_creation
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        payload = _recv_exactly(sock, size)
    received_id, _throttle, count = struct.unpack_from(">iii", payload, 0)
    if received_id != correlation_id:
        raise ValueError(f"unexpected correlation id {received_id}")
    offset = 12
    brokers: list[tuple[int, str, int]] = []
    for _ in range(count):
        (node_id, host_len) = struct.unpack_from(">ih", payload, offset)
        offset += 6
        node_host = payload[offset : offset + host_len].decode()
        offset += host_len
        (node_port, rack_len) = struct.unpack_from(">ih", payload, offset)
        offset += 6 + max(rack_len, 0)
        brokers.append((node_id, node_host, node_port))
    return brokers


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# -- topics ----------------------------------------------------------------------------------


async def create_topics_async(bootstrap: str, topics: list[str], partitions: int = 3) -> None:
    """Create `topics` (replication factor 1); ones that already exist are left alone."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import for_code

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(name=name, num_partitions=partitions, replication_factor=1)
                for name in topics
            ]
        )
    finally:
        await admin.close()
    topic_already_exists = 36
    failures = [
        f"{error[0]}: {for_code(error[1]).__name__}" + (f" ({error[2]})" if len(error) > 2 else "")
        for error in response.topic_errors
        if error[1] not in (0, topic_already_exists)
    ]
    if failures:
        raise RuntimeError("could not create Kafka topics: " + "; ".join(failures))


def create_topics(bootstrap: str, topics: list[str], partitions: int = 3) -> None:
    """`create_topics_async` from synchronous code (in a helper thread if a loop is running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(create_topics_async(bootstrap, topics, partitions))
        return
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(create_topics_async(bootstrap, topics, partitions))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="kafka-create-topics")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


# -- python -m devstack.kafka ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.kafka",
        description="Run a single-node Kafka broker (KRaft) on loopback until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=None, help="client port (default: a free one)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="data and log directory (default: a temporary one)"
    )
    parser.add_argument(
        "--sasl-user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="add a SASL_PLAINTEXT listener (and SASL_SSL with --tls) accepting this user "
        "with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; may be repeated",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="add TLS listeners (SSL, and SASL_SSL with --sasl-user), with a CA made at start",
    )
    args = parser.parse_args(argv)
    users = dict(user.split(":", 1) for user in args.sasl_user)

    def announce(broker: KafkaBroker) -> None:
        sys.stderr.write(f"jobwire: Kafka {KAFKA_VERSION} ready; log: {broker.log_path}\n")
        print(f"KAFKA_BOOTSTRAP={broker.bootstrap}", flush=True)
        for protocol, address in broker.listeners.items():
            if protocol != "PLAINTEXT":
                print(f"KAFKA_{protocol}={address}", flush=True)
        if broker.tls is not None:
            print(f"KAFKA_CA_FILE={broker.tls.ca_file}", flush=True)
            print(f"KAFKA_CLIENT_CERT={broker.tls.client_cert}", flush=True)
            print(f"KAFKA_CLIENT_KEY={broker.tls.client_key}", flush=True)

    return hold(
        "Kafka",
        lambda: start_kafka(args.dir, args.port, sasl_users=users, tls=args.tls),
        announce,
        lambda broker: _tail(broker.log_path),
    )


if __name__ == "__main__":
    sys.exit(main())
