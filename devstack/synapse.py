"""A real Matrix homeserver (Synapse) on loopback, so tests read back what ``matrix://`` sends.

Synapse and its ~60 dependencies (Twisted, …) live in a virtualenv of their own, never in
jobwire's: ``~/.cache/jobwire/synapse-<version>`` (or ``$JOBWIRE_SYNAPSE_CACHE``), created from
PyPI on first use with the exact pins of ``synapse-requirements.txt`` next to this file (about
20 s), reused afterwards. The server runs on 127.0.0.1 and a free port, plain HTTP, SQLite, with
federation and every outbound request switched off and (by default) its rate limits lifted.

    with running_synapse() as server:
        bot = server.register("jobwire-bot", "a password")
        reader = server.login(server.register("alice", "another").localpart, "another")
        room = reader.create_room(alias="alerts", invite=[bot.user_id])
        # Apprise joins the room (accepting the invite) on its first send:
        apprise_url(server, bot, room)   # matrix://jobwire-bot:…@127.0.0.1:PORT/!…?hsreq=no
        ...
        [message] = reader.wait_for_messages(room, 1, timeout=10)

Apprise 2.2.0's Matrix plugin, as measured against this server (see the tests):

* ``matrix://`` is plain HTTP and needs the port; ``matrixs://`` is HTTPS. Server discovery
  (``.well-known``) and end-to-end encryption only ever happen with ``matrixs://``.
* ``user:password@`` logs in on every new Apprise object and logs out again when the object is
  garbage-collected (a new device each time). Synapse's default ``rc_login`` (per account and
  per address) allows 5 logins in a burst, then about one per 5.5 minutes, and Apprise sleeps
  through the ``retry_after_ms`` of the 429 in its thread: keep ``lift_rate_limits=True`` for
  tests, and prefer the token form ``matrix://TOKEN@host:port/…`` for a busy bot.
* A room id target needs ``?hsreq=no`` here: Synapse's default room version (12) makes ids
  without a ``:server`` part, and Apprise would otherwise append ``:localhost`` to it. A target
  without ``!``/``#`` (or with ``%23``) is a room alias on the bot's own server.
* Apprise joins the room itself (``POST /join``), which accepts a pending invite; a room the
  bot was not invited to fails with 403 (which Apprise words "Invalid Token"). An alias that
  does not exist is created by the bot (private, only the bot in it) and the send is reported
  as a success.
* TEXT arrives as ``body = "# {title}\\r\\n{body}"``, no HTML. MARKDOWN and HTML add
  ``format = org.matrix.custom.html`` and ``formatted_body = "<h1>{title}</h1>…"`` (Markdown
  rendered without extensions, HTML passed as is); ``body`` is then the markup stripped,
  link addresses included.
* One event holds 64 KiB: a TEXT body of about 64,900 ASCII characters, a MARKDOWN one about
  32,400 (it travels twice). Apprise's default ``overflow=upstream`` sends a longer body whole
  and Synapse refuses it (413); ``?overflow=split`` posts it in parts titled ``[1/2]``… but
  loses every part after the first with a token URL (one transaction id for all of them).
* Each send takes 1-1.5 s, nearly all of it Apprise's own pause of 0.5 s between two requests
  (login, join, send, and logout when the object is collected).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.servers import hold, kill_at_exit, terminate

__all__ = [
    "SERVER_NAME",
    "SYNAPSE_VERSION",
    "MatrixAccount",
    "MatrixClient",
    "MatrixError",
    "MatrixMessage",
    "MatrixRoom",
    "SynapseServer",
    "apprise_url",
    "ensure_synapse",
    "open_room",
    "running_synapse",
    "start_synapse",
]

SYNAPSE_VERSION = "1.163.2"
"""The ``matrix-synapse`` release pinned in ``synapse-requirements.txt``."""

SERVER_NAME = "localhost"
"""The homeserver's name: users are ``@name:localhost``, aliases ``#room:localhost``."""

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 30.0
PORT_ATTEMPTS = 3

_REQUIREMENTS = Path(__file__).with_name("synapse-requirements.txt")
_MARKER = ".complete"

# Generous enough that no test ever meets one, tight enough to stay a number Synapse accepts.
_NO_LIMIT = {"per_second": 10_000, "burst_count": 100_000}
_RATE_LIMITS = (
    "rc_message",
    "rc_registration",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_joins.local",
    "rc_joins.remote",
    "rc_joins_per_room",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_room_creation",
    "rc_media_create",
    "rc_admin_redaction",
    "rc_3pid_validation",
    "rc_presence.per_user",
    "rc_delayed_event_mgmt",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
)


# -- the virtualenv ---------------------------------------------------------------------------


def cache_dir() -> Path:
    """Synapse's virtualenv: ``$JOBWIRE_SYNAPSE_CACHE``, else ``~/.cache/jobwire/synapse-<v>``."""
    override = os.environ.get("JOBWIRE_SYNAPSE_CACHE")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jobwire" / f"synapse-{SYNAPSE_VERSION}"


def _cache_key() -> str:
    # New pins or another Python rebuild the virtualenv, even under a fixed $JOBWIRE_SYNAPSE_CACHE.
    pins = hashlib.sha256(_REQUIREMENTS.read_bytes()).hexdigest()
    return f"{SYNAPSE_VERSION} {pins} {sys.version_info.major}.{sys.version_info.minor}\n"


def _venv_python(root: Path) -> Path:
    return root / "venv" / "bin" / "python"


def ensure_synapse() -> Path:
    """The Python of Synapse's own virtualenv, installed from PyPI on the first call only."""
    root = cache_dir()
    marker = root / _MARKER
    key = _cache_key()
    python = _venv_python(root)
    if marker.is_file() and marker.read_text() == key and python.is_file():
        return python
    root.mkdir(parents=True, exist_ok=True)
    # A lock, so that parallel test runs (or a demo beside them) install only once.
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == key and python.is_file():
            return python
        marker.unlink(missing_ok=True)
        _install(root / "venv")
        marker.write_text(key)
    return python


def _install(venv: Path) -> None:
    # Built in place (a virtualenv cannot be moved); the marker, written last, says it is whole.
    shutil.rmtree(venv, ignore_errors=True)
    sys.stderr.write(
        f"jobwire: installing Synapse {SYNAPSE_VERSION} from PyPI into {venv} "
        "(first run only, about 20 s)\n"
    )
    sys.stderr.flush()
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--only-binary=:all:",
            "-r",
            str(_REQUIREMENTS),
        ],
    ]
    for command in steps:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            output = (result.stdout + result.stderr).strip().splitlines()
            raise RuntimeError(
                f"could not install Synapse {SYNAPSE_VERSION} ({command[2:4]} exited "
                f"{result.returncode}); PyPI must be reachable. The end of its output:\n"
                + "\n".join(output[-30:])
            )


# -- the server -------------------------------------------------------------------------------


@dataclass(eq=False)
class SynapseServer:
    """One running homeserver; users are made with `register`, clients with `login`."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    registration_secret: str = field(repr=False)
    owns_workdir: bool = field(default=False, repr=False)
    """A temporary directory made by `start_synapse`, removed by `stop`."""

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def server_name(self) -> str:
        return SERVER_NAME

    @property
    def config_path(self) -> Path:
        return self.workdir / "homeserver.yaml"

    def is_running(self) -> bool:
        return self.process.poll() is None

    def register(self, localpart: str, password: str, *, admin: bool = False) -> MatrixAccount:
        """A new user, through the shared-secret admin API (open registration stays off)."""
        nonce = _call(self.base_url, "GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.registration_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, localpart, password):
            mac.update(part.encode())
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        answer = _call(
            self.base_url,
            "POST",
            "/_synapse/admin/v1/register",
            {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )
        return MatrixAccount(
            user_id=answer["user_id"],
            localpart=localpart,
            password=password,
            access_token=answer["access_token"],
        )

    def login(self, localpart: str, password: str) -> MatrixClient:
        """A client logged in with a password (a new device), as a person's app would be."""
        answer = _call(
            self.base_url,
            "POST",
            "/_matrix/client/v3/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
                "initial_device_display_name": "jobwire devstack",
            },
        )
        return MatrixClient(self.base_url, answer["user_id"], answer["access_token"])

    def client(self, account: MatrixAccount) -> MatrixClient:
        """A client with the token `register` returned (no extra login)."""
        return MatrixClient(self.base_url, account.user_id, account.access_token)

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM), SIGKILL after 15 s; removes a temporary workdir."""
        terminate(self.process, STOP_TIMEOUT)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL now, as in a crash; the workdir stays."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def start_synapse(
    workdir: Path | None = None,
    port: int | None = None,
    *,
    lift_rate_limits: bool = True,
    timeout: float = READY_TIMEOUT,
) -> SynapseServer:
    """Start a homeserver on 127.0.0.1; returns once its client API answers.

    `workdir` holds homeserver.yaml, the signing key, the SQLite database, media and
    ``synapse.log`` (a temporary directory, removed on `stop`, when None). `lift_rate_limits`
    False keeps Synapse's own limits, to see what a real server does to a chatty bot.
    """
    python = ensure_synapse()
    owns = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="jobwire-synapse-")) if workdir is None else workdir
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "synapse.log"
    secret = secrets.token_urlsafe(32)
    attempts = 1 if port is not None else PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else _free_port()
        config = _homeserver_config(workdir, chosen, secret, lift_rate_limits)
        # JSON is YAML: no YAML writer needed, and the file still reads as Synapse's usual config.
        (workdir / "homeserver.yaml").write_text(json.dumps(config, indent=2) + "\n")
        server = SynapseServer(
            port=chosen,
            workdir=workdir,
            process=_launch(python, workdir, log_path),
            log_path=log_path,
            registration_secret=secret,
            owns_workdir=owns,
        )
        kill_at_exit(server.process)
        try:
            _wait_ready(server, timeout)
        except _PortTaken:
            server.kill()
            if attempt == attempts:
                raise RuntimeError(
                    f"Synapse could not bind {HOST}:{chosen}: the port is in use"
                ) from None
            continue
        except BaseException:
            server.kill()  # the workdir stays, even a temporary one: its synapse.log tells why
            raise
        return server
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_synapse(
    workdir: Path | None = None,
    port: int | None = None,
    *,
    lift_rate_limits: bool = True,
    timeout: float = READY_TIMEOUT,
) -> Iterator[SynapseServer]:
    """`start_synapse` for the length of a with-block, stopped however the block ends."""
    server = start_synapse(workdir, port, lift_rate_limits=lift_rate_limits, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def _homeserver_config(
    workdir: Path, port: int, secret: str, lift_rate_limits: bool
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://{HOST}:{port}/",
        "pid_file": str(workdir / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": [HOST],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                # "client" carries the client API and /_synapse/admin; no federation listener.
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(workdir / "homeserver.db")}},
        "media_store_path": str(workdir / "media"),
        # Synapse writes a fresh key here when the file is missing (its default start mode).
        "signing_key_path": str(workdir / "signing.key"),
        "registration_shared_secret": secret,
        "macaroon_secret_key": secrets.token_urlsafe(32),
        "form_secret": secrets.token_urlsafe(32),
        "enable_registration": False,
        "report_stats": False,
        # Nothing leaves this machine: no key servers, no federation, no URL previews.
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "url_preview_enabled": False,
        "enable_metrics": False,
        # Background work that tests do not look at, on a machine with two shared cores.
        "presence": {"enabled": False},
        "user_directory": {"enabled": False},
    }
    if lift_rate_limits:
        for key in _RATE_LIMITS:
            head, _, tail = key.partition(".")
            if tail:
                config.setdefault(head, {})[tail] = dict(_NO_LIMIT)
            else:
                config[head] = dict(_NO_LIMIT)
    return config


def _launch(python: Path, workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    command = [str(python), "-m", "synapse.app.homeserver", "-c", str(workdir / "homeserver.yaml")]
    with log_path.open("ab") as log:
        log.write(f"== starting Synapse: {' '.join(command)}\n".encode())
        log.flush()
        # Its own session: a terminal's Ctrl-C reaches us, and we stop the server in order.
        return subprocess.Popen(
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class _PortTaken(Exception):
    pass


def _wait_ready(server: SynapseServer, timeout: float) -> None:
    # Another process: nothing to await but its answer, so poll the cheapest endpoint.
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    url = f"{server.base_url}/_matrix/client/versions"
    while True:
        code = server.process.poll()
        if code is not None:
            tail = _tail(server.log_path)
            if "Address already in use" in tail:
                raise _PortTaken
            raise RuntimeError(
                f"Synapse exited with code {code} while starting; the end of "
                f"{server.log_path}:\n{tail}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200 and "versions" in json.load(response):
                    return
        except (OSError, ValueError) as exc:
            last_error = repr(exc)
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(
                f"Synapse did not answer at {url} within {timeout:.0f} s ({last_error}); "
                f"the end of {server.log_path}:\n" + _tail(server.log_path)
            )
        time.sleep(0.1)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_bytes()[-256 * 1024 :].decode(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


# -- a client ---------------------------------------------------------------------------------


class MatrixError(RuntimeError):
    """The homeserver refused a request; `errcode` is Matrix's (M_FORBIDDEN, M_LIMIT_EXCEEDED…)."""

    def __init__(self, status: int, errcode: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode


@dataclass(frozen=True)
class MatrixAccount:
    """A user made by `SynapseServer.register`, with the token that registration returned."""

    user_id: str
    localpart: str
    password: str = field(repr=False)
    access_token: str = field(repr=False)


@dataclass(frozen=True)
class MatrixMessage:
    """One ``m.room.message`` event as the room's members receive it."""

    event_id: str
    sender: str
    msgtype: str
    body: str
    format: str | None
    """``org.matrix.custom.html`` when the event carries HTML, else None."""
    formatted_body: str | None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> MatrixMessage:
        content = event.get("content", {})
        return cls(
            event_id=event["event_id"],
            sender=event["sender"],
            msgtype=content.get("msgtype", ""),
            body=content.get("body", ""),
            format=content.get("format"),
            formatted_body=content.get("formatted_body"),
        )


_MESSAGES_ONLY = json.dumps({"types": ["m.room.message"]})


class MatrixClient:
    """The few client-server API calls a test needs, as one logged-in user (blocking)."""

    def __init__(self, base_url: str, user_id: str, access_token: str) -> None:
        self.base_url = base_url
        self.user_id = user_id
        self._token = access_token

    def __repr__(self) -> str:
        return f"MatrixClient({self.base_url!r}, {self.user_id!r})"

    def create_room(
        self,
        *,
        alias: str | None = None,
        name: str | None = None,
        invite: Iterable[str] = (),
        preset: str = "private_chat",
    ) -> str:
        """A new room (its id); `alias` is a localpart, giving ``#alias:localhost``."""
        body: dict[str, Any] = {"preset": preset, "invite": list(invite)}
        if alias is not None:
            body["room_alias_name"] = alias
        if name is not None:
            body["name"] = name
        room_id: str = self._call("POST", "/_matrix/client/v3/createRoom", body)["room_id"]
        return room_id

    def invite(self, room_id: str, user_id: str) -> None:
        self._call("POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/invite", {"user_id": user_id})

    def join(self, room: str) -> str:
        """Join a room by id or alias (accepting an invite); returns its id."""
        room_id: str = self._call("POST", f"/_matrix/client/v3/join/{_q(room)}", {})["room_id"]
        return room_id

    def resolve_alias(self, alias: str) -> str:
        room_id: str = self._call("GET", f"/_matrix/client/v3/directory/room/{_q(alias)}")[
            "room_id"
        ]
        return room_id

    def joined_members(self, room_id: str) -> list[str]:
        joined = self._call("GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/joined_members")
        return sorted(joined["joined"])

    def send_text(self, room_id: str, body: str) -> str:
        """Post a plain message (an event id back), as a person typing in the room would."""
        txn = secrets.token_hex(8)
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/send/m.room.message/{txn}"
        event_id: str = self._call("PUT", path, {"msgtype": "m.text", "body": body})["event_id"]
        return event_id

    def messages(self, room_id: str) -> list[MatrixMessage]:
        """Every message of the room so far, oldest first (paged through /messages)."""
        found: list[MatrixMessage] = []
        token: str | None = None
        while True:
            query = {"dir": "f", "limit": "500", "filter": _MESSAGES_ONLY}
            if token is not None:
                query["from"] = token
            page = self._call(
                "GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/messages", query=query
            )
            chunk = page.get("chunk", [])
            found.extend(MatrixMessage.from_event(event) for event in chunk)
            token = page.get("end")
            if not chunk or token is None:
                return found

    def wait_for_messages(self, room_id: str, count: int, timeout: float) -> list[MatrixMessage]:
        """The room's messages once there are at least `count`; TimeoutError otherwise.

        Waits on /sync, which the server answers as soon as something new reaches the room
        (a long poll, not a sleep). The sync position is taken before the messages are read,
        so a message arriving in between still wakes the next sync.
        """
        deadline = time.monotonic() + timeout
        since = self._sync(room_id, None, 0)
        while True:
            found = self.messages(room_id)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                bodies = [message.body[:80] for message in found]
                raise TimeoutError(
                    f"expected {count} messages in {room_id} within {timeout:g} s, "
                    f"got {len(found)}: {bodies}"
                )
            since = self._sync(room_id, since, remaining)

    def _sync(self, room_id: str, since: str | None, wait_s: float) -> str:
        # Only this room's messages count; everything else a sync would carry is filtered out.
        sync_filter = {
            "presence": {"types": []},
            "account_data": {"types": []},
            "room": {
                "rooms": [room_id],
                "timeline": {"types": ["m.room.message"], "limit": 1},
                "state": {"types": []},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
        }
        query = {"filter": json.dumps(sync_filter), "timeout": str(int(wait_s * 1000))}
        if since is not None:
            query["since"] = since
        answer = self._call(
            "GET", "/_matrix/client/v3/sync", query=query, timeout=wait_s + REQUEST_TIMEOUT
        )
        token: str = answer["next_batch"]
        return token

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        query: Mapping[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> dict[str, Any]:
        return _call(self.base_url, method, path, body, query, self._token, timeout)


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _call(
    base_url: str,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    query: Mapping[str, str] | None = None,
    token: str | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> dict[str, Any]:
    url = base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(url, method=method)
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, data, timeout=timeout) as response:
            answer: dict[str, Any] = json.load(response)
            return answer
    except urllib.error.HTTPError as exc:
        # Matrix errors are JSON ({"errcode", "error"}); the URL holds no secret, the token
        # travels in a header, so both are safe to show.
        try:
            details = json.load(exc)
        except ValueError:
            details = {}
        errcode = str(details.get("errcode", "M_UNKNOWN"))
        raise MatrixError(
            exc.code,
            errcode,
            f"{method} {path} answered {exc.code} {errcode}: {details.get('error', exc.reason)}",
        ) from None


# -- what Apprise is given --------------------------------------------------------------------


def apprise_url(
    server: SynapseServer,
    account: MatrixAccount,
    room: str,
    *,
    token: bool = False,
    **params: str,
) -> str:
    """The ``matrix://`` URL that makes Apprise post to `room` as `account`.

    `room` is a room id (``!…``), an alias (``#name:localhost``) or an alias localpart.
    Password form (Apprise logs in, and out after) unless `token`: then the account's access
    token, which skips both. Extra `params` (``msgtype="notice"``…) go into the query.
    """
    auth = _q(account.access_token) if token else f"{_q(account.localpart)}:{_q(account.password)}"
    query = dict(params)
    if room.startswith("!"):
        # Room version 12 ids carry no ":server"; Apprise would otherwise append one.
        query.setdefault("hsreq", "no")
    target = _q(room)
    suffix = "?" + urllib.parse.urlencode(query) if query else ""
    return f"matrix://{auth}@{HOST}:{server.port}/{target}{suffix}"


@dataclass(frozen=True)
class MatrixRoom:
    """A room where `reader` (a person) is joined and `bot` (jobwire's sender) is invited.

    The bot joins through Apprise on its first send, as it would on a real server. From a
    coroutine, wait through ``await asyncio.to_thread(room.wait_for_messages, n, timeout)``.
    """

    server: SynapseServer
    room_id: str
    alias: str
    """``#name:localhost``."""
    bot: MatrixAccount
    reader: MatrixClient

    def url(self, *, token: bool = False, by_alias: bool = False, **params: str) -> str:
        """The ``matrix://`` URL for the bot to post here (see `apprise_url`)."""
        target = self.alias if by_alias else self.room_id
        return apprise_url(self.server, self.bot, target, token=token, **params)

    def messages(self) -> list[MatrixMessage]:
        return self.reader.messages(self.room_id)

    def wait_for_messages(self, count: int, timeout: float) -> list[MatrixMessage]:
        return self.reader.wait_for_messages(self.room_id, count, timeout)


def open_room(
    server: SynapseServer, bot: MatrixAccount, reader: MatrixClient, name: str
) -> MatrixRoom:
    """A new private room `name` (also its alias), made by `reader`, with `bot` invited."""
    room_id = reader.create_room(alias=name, name=name, invite=[bot.user_id])
    return MatrixRoom(server, room_id, f"#{name}:{server.server_name}", bot, reader)


# -- python -m devstack.synapse ---------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.synapse",
        description="Run a Matrix homeserver (Synapse) on loopback until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: a free one)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="config, data and log (default: a temporary one)"
    )
    args = parser.parse_args(argv)

    def announce(server: SynapseServer) -> None:
        register = ensure_synapse().with_name("register_new_matrix_user")
        sys.stderr.write(
            f"jobwire: Synapse {SYNAPSE_VERSION} ready; log: {server.log_path}\n"
            f"jobwire: add users with: {register} -c {server.config_path} {server.base_url}\n"
        )
        print(f"MATRIX_HOMESERVER={server.base_url}", flush=True)

    return hold(
        "Synapse",
        lambda: start_synapse(args.dir, args.port),
        announce,
        lambda server: _tail(server.log_path),
    )


if __name__ == "__main__":
    sys.exit(main())
