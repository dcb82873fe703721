"""Installing jobwire as a packager and a new user do: the runtime alone, and Rust when absent."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RUST_SH = ROOT / "devstack" / "rust.sh"


def _run(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, cwd=cwd, env=env
    )


def new_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin"


def pip(bin_dir: Path, *args: str | Path, env: dict[str, str] | None = None) -> None:
    done = _run(bin_dir / "python", "-m", "pip", "install", "-q", *args, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


def cargo_dir() -> str:
    found = _run("bash", RUST_SH)
    assert found.returncode == 0, found.stderr
    return found.stdout.strip()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jobwire's Python side as the image's build context has it (.dockerignore), and nothing
    left over from an earlier build: setuptools would put a stale build/ into the wheel."""
    context = tmp_path_factory.mktemp("context")
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, context / name)
    for name in ("config", "consumers", "service"):
        shutil.copytree(ROOT / name, context / name, ignore=shutil.ignore_patterns("__pycache__"))
    return context


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Path:
    """jobwire's two wheels, built as the Dockerfile's first stage builds them. The index is
    built in native/ itself, so cargo reuses what `make install` compiled."""
    tmp = tmp_path_factory.mktemp("build")
    build = new_venv(tmp / "venv")
    pip(build, "--require-hashes", "-r", "requirements/build.txt")
    env = {
        **os.environ,
        "PATH": f"{build}{os.pathsep}{cargo_dir()}{os.pathsep}{os.environ['PATH']}",
    }
    out = tmp / "wheels"
    done = _run(
        build / "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", ROOT / "native", source,
        "-w", out, cwd=tmp, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def assert_a_runtime_without_the_dev_stack(bin_dir: Path, cwd: Path) -> None:
    # Run outside the source tree, where devstack/ would be importable as a folder.
    shown = _run(bin_dir / "jobwire", "run", "--help", cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    assert "Usage: jobwire run" in shown.stdout
    for module in ("devstack", "aiosmtpd", "pytest", "hypothesis"):
        tried = _run(bin_dir / "python", "-c", f"import {module}", cwd=cwd)
        assert "ModuleNotFoundError" in tried.stderr, module
    # The schema's migrations (and alembic's template) are in the wheel, not only in the tree.
    env = {**os.environ, "JOBWIRE_STORE__URL": f"sqlite+aiosqlite:///{cwd / 'jobwire.db'}"}
    upgraded = _run(bin_dir / "jobwire", "db", "upgrade", cwd=cwd, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded the store from" in upgraded.stdout


@pytest.mark.slow
def test_the_runtime_lock_and_the_wheels_make_a_jobwire_without_the_dev_stack(
    wheels: Path, tmp_path: Path
) -> None:
    # What the Dockerfile's runtime stage does, step by step.
    runtime = new_venv(tmp_path / "venv")
    pip(runtime, "--require-hashes", "-r", "requirements/runtime.txt")
    pip(runtime, "--no-deps", *sorted(wheels.glob("*.whl")))
    checked = _run(runtime / "python", "-m", "pip", "check")
    assert checked.returncode == 0, checked.stdout  # the lock left nothing out
    assert_a_runtime_without_the_dev_stack(runtime, tmp_path)
    (jobwire,) = wheels.glob("jobwire-*.whl")
    top = {name.split("/")[0] for name in zipfile.ZipFile(jobwire).namelist()}
    assert top == {"config", "consumers", "service", "jobwire-0.1.0.dist-info"}


@pytest.mark.slow
def test_pip_install_dot_in_an_empty_venv_gives_a_working_jobwire(
    wheels: Path, source: Path, tmp_path: Path
) -> None:
    # The README's `pip install ./native .`, with the index already built (no index has it):
    # pip resolves the rest from pyproject.toml's pins, not the lock.
    plain = new_venv(tmp_path / "venv")
    (native,) = wheels.glob("jobwire_native-*.whl")
    pip(plain, native, source)
    assert_a_runtime_without_the_dev_stack(plain, tmp_path)


# -- Rust, when the machine has none ---------------------------------------------------------


class _RustupServer(ThreadingHTTPServer):
    """Serves one file at every path, and records what was asked for."""

    def __init__(self, body: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = body
        self.asked: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: _RustupServer

    def do_GET(self) -> None:
        self.server.asked.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_rustup(tmp_path: Path) -> Iterator[_RustupServer]:
    # Not the pinned rustup-init: a script that would leave a mark if anything ran it.
    server = _RustupServer(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\n".encode())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def no_rust_env(tmp_path: Path, extra_path: Path | None = None) -> dict[str, str]:
    """This machine's environment as if it had no Rust: no cargo on PATH, an empty home."""
    path = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "cargo").exists()]
    if extra_path:
        path.insert(0, str(extra_path))
    return {
        **os.environ,
        "PATH": os.pathsep.join(path),
        "HOME": str(tmp_path / "home"),
        "CARGO_HOME": str(tmp_path / "cargo"),
        "RUSTUP_HOME": str(tmp_path / "rustup"),
    }


def fake_cargo(folder: Path, version: str, lints: bool = True) -> Path:
    folder.mkdir(parents=True)
    cargo = folder / "cargo"
    cargo.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = --version ] && echo "cargo {version} (fake)" && exit 0\n'
        f"exit {0 if lints else 101}\n"
    )
    cargo.chmod(0o755)
    return folder


only_linux_x86_64 = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the expected download path names x86_64 Linux",
)


@only_linux_x86_64
def test_without_cargo_it_fetches_the_pinned_rustup_and_refuses_one_that_does_not_match(
    tmp_path: Path, fake_rustup: _RustupServer
) -> None:
    env = no_rust_env(tmp_path)
    env["RUSTUP_UPDATE_ROOT"] = f"http://127.0.0.1:{fake_rustup.server_port}"
    done = _run("bash", RUST_SH, env=env)
    said = done.stderr.splitlines()
    assert said[0] == (
        "jobwire: no cargo 1.82 or newer: installing Rust (stable, minimal profile, with "
        f"rustfmt and clippy) with rustup 1.28.2 into {tmp_path / 'cargo'}"
    )
    assert fake_rustup.asked == ["/archive/1.28.2/x86_64-unknown-linux-gnu/rustup-init"]
    assert (
        "not the pinned 20a06e644b0d9bd2fbdbfd52d42540bdde820ea7df86e92e533c073da0cdd43c"
        in (said[1])
    )
    assert "not running it" in said[1]
    assert done.returncode == 1
    assert done.stdout == ""
    assert not (tmp_path / "ran").exists()


@only_linux_x86_64
def test_a_cargo_older_than_the_crate_needs_is_not_used(
    tmp_path: Path, fake_rustup: _RustupServer
) -> None:
    # Debian bookworm's own cargo is 1.65: older than native/ needs, and only the old index.
    debian = fake_cargo(tmp_path / "usr-bin", "1.65.0")
    env = no_rust_env(tmp_path, extra_path=debian)
    env["RUSTUP_UPDATE_ROOT"] = f"http://127.0.0.1:{fake_rustup.server_port}"
    done = _run("bash", RUST_SH, env=env)
    assert done.stderr.startswith(
        f"jobwire: cargo 1.65.0 at {debian / 'cargo'} is older than native/ needs (1.82); "
        "not using it\njobwire: no cargo 1.82 or newer: installing Rust"
    )
    assert done.returncode == 1  # the fake rustup-init was refused
    assert fake_rustup.asked  # ...after it went for the pinned one


def test_a_cargo_in_cargo_home_is_used_even_when_path_lacks_it(tmp_path: Path) -> None:
    # As after rustup ran with --no-modify-path: ~/.cargo/bin is not on PATH, and need not be.
    installed = fake_cargo(tmp_path / "cargo" / "bin", "1.99.1")
    done = _run("bash", RUST_SH, env=no_rust_env(tmp_path))
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{installed}\n", "")


def test_make_test_says_when_the_cargo_lacks_fmt_and_clippy(tmp_path: Path) -> None:
    plain = fake_cargo(tmp_path / "cargo" / "bin", "1.99.1", lints=False)
    done = _run("bash", RUST_SH, "--lints", env=no_rust_env(tmp_path))
    assert done.returncode == 1
    assert f"make test runs cargo fmt and cargo clippy, which {plain}/cargo lacks" in done.stderr
