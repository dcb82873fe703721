"""What a packager gets: lock files that match pyproject.toml, and an image of the runtime only."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NATIVE = tomllib.loads((ROOT / "native" / "pyproject.toml").read_text())
LOCKS = ROOT / "requirements"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# Dev-only packages: the dev extras, and what only they need.
DEV_ONLY = {"aiosmtpd", "atpublic", "pytest", "hypothesis", "mypy", "ruff", "uv", "schemathesis"}


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def pins(lock: str) -> dict[str, str]:
    """Name -> version of every package in requirements/LOCK.txt."""
    found = {}
    for line in (LOCKS / f"{lock}.txt").read_text().splitlines():
        match = re.match(r"([a-z0-9._-]+)==([^ ;\\]+)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def exact(requirements: list[str]) -> dict[str, str]:
    return {
        _name(r): r.split("==", 1)[1].strip()
        for r in requirements
        if "==" in r and _name(r) != "jobwire-native"
    }


def test_the_lock_files_pin_what_pyproject_asks_for() -> None:
    # A dependency added or moved in pyproject.toml without `make lock` fails here, not later.
    stale = []
    wanted = {
        "runtime": exact(PYPROJECT["project"]["dependencies"]),
        "dev": exact(PYPROJECT["project"]["optional-dependencies"]["dev"]),
        "build": exact(NATIVE["build-system"]["requires"]),
    }
    for lock, requirements in wanted.items():
        locked = pins(lock)
        stale += [f"{lock}: {n}=={v}" for n, v in requirements.items() if locked.get(n) != v]
    assert not stale, f"run `make lock`: the lock files do not pin {stale}"


def test_dev_pins_the_runtime_at_the_same_versions() -> None:
    dev = pins("dev")
    assert {name: dev.get(name) for name in pins("runtime")} == pins("runtime")
    assert {name: dev.get(name) for name in pins("build")} == pins("build")


def test_the_runtime_lock_holds_nothing_of_the_dev_stack() -> None:
    assert DEV_ONLY & pins("runtime").keys() == set()
    assert pins("dev").keys() >= DEV_ONLY  # the list above names real dev packages


def test_every_pin_carries_its_hashes() -> None:
    for lock in ("runtime", "build", "dev"):
        text = (LOCKS / f"{lock}.txt").read_text()
        entries = re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2])
        unhashed = [e.split()[0] for e in entries if e.strip() and "--hash=sha256:" not in e]
        assert not unhashed, (lock, unhashed)


def test_jobwire_itself_imports_nothing_of_the_dev_stack() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, service.cli, service.app, service.web; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'devstack', 'aiosmtpd'}))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",  # not the source tree, where devstack/ would be importable anyway
    )
    assert loaded.stdout.strip() == "[]"


# -- the image -------------------------------------------------------------------------------


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), one list per stage."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    found: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            found.append([])
        found[-1].append(line)
    return found


def test_the_native_wheel_is_built_in_an_official_rust_image_not_by_piping_to_sh() -> None:
    first = stages()[0]
    assert re.match(r"FROM rust:\d+\.\d+[\w.-]* AS native", first[0]), first[0]
    assert not re.search(r"curl[^|]*\|\s*(ba)?sh", DOCKERFILE)
    assert "rustup.rs" not in DOCKERFILE


def test_the_image_runs_as_a_user_of_its_own_and_checks_readyz() -> None:
    runtime = stages()[-1]
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert users, "the runtime stage must switch to a non-root USER"
    assert users[-1] not in {"root", "0", "0:0"}
    checks = [line for line in runtime if line.upper().startswith("HEALTHCHECK ")]
    assert len(checks) == 1
    assert "/readyz" in checks[0]


def test_the_image_holds_the_runtime_only() -> None:
    runtime = " ".join(stages()[-1])
    everything = " ".join(" ".join(stage) for stage in stages())  # instructions, not comments
    assert "--require-hashes -r requirements/runtime.txt" in runtime
    assert "dev.txt" not in everything
    assert "[dev]" not in everything
    for folder in ("devstack", "tests", "bench"):
        assert folder not in everything
    # The build context is an allowlist: folders not named in .dockerignore never reach it.
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"
    for folder in ("devstack", "tests", "bench", "docs", ".venv"):
        assert not any(rule.lstrip("!").startswith(folder) for rule in rules if rule[0] == "!")
