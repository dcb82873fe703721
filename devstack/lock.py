"""`make lock`: every dependency pinned, transitive ones too, with hashes, from pyproject.toml.

Three files in requirements/, each for `pip install --require-hashes -r FILE`:

- runtime.txt: what `jobwire run` needs, nothing else (the Docker image, a production install);
- build.txt: pip and the build backends of jobwire (setuptools) and native/ (maturin);
- dev.txt: both, plus the dev extras (`make install`, CI), at the same versions as those two.

uv, pinned in the dev extras, resolves them for every platform from Python 3.11 on. A rerun
keeps each pin that still fits (the files are its preferences), so adding a dependency to
pyproject.toml adds it and what it needs and moves nothing else; `make lock LOCK_ARGS=--upgrade`
moves everything to its newest version. jobwire-native is built from native/ and is on no
index, so it stays out: it and jobwire itself are installed with --no-deps after a lock file.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "requirements"
LOCAL = {"jobwire-native"}  # built here, not resolved from an index


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def inputs() -> dict[str, list[str]]:
    """The requirements each lock file pins, read from the two pyproject.toml files."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    native = tomllib.loads((ROOT / "native" / "pyproject.toml").read_text())
    runtime = [r for r in project["project"]["dependencies"] if _name(r) not in LOCAL]
    build = [
        "pip",
        *project["build-system"]["requires"],
        *native["build-system"]["requires"],
    ]
    dev = [*runtime, *build, *project["project"]["optional-dependencies"]["dev"]]
    return {"runtime": runtime, "build": build, "dev": dev}


def uv_pin() -> str:
    for requirement in inputs()["dev"]:
        if _name(requirement) == "uv" and "==" in requirement:
            return requirement.split("==", 1)[1].strip()
    raise SystemExit("jobwire: pin uv exactly (uv==X.Y.Z) in pyproject.toml's dev extras")


def uv() -> Path:
    """The uv of this virtualenv, at the version pinned, installed if it is not there yet."""
    version = uv_pin()
    found = Path(sys.executable).with_name("uv")
    have = ""
    if found.exists():
        have = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    if not have.startswith(f"uv {version} "):
        print(f"jobwire: installing uv=={version} (pinned in pyproject.toml)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"uv=={version}"], check=True)
    return found


def compile_lock(tool: Path, name: str, requirements: list[str], extra: list[str]) -> None:
    out = OUT / f"{name}.txt"
    # Relative paths: they appear in the files' annotations.
    held_to = ["requirements/runtime.txt", "requirements/build.txt"] if name == "dev" else []
    constraints = [arg for path in held_to for arg in ("--constraint", path)]
    subprocess.run(
        [
            tool,
            "pip",
            "compile",
            "-",
            "--output-file",
            str(out),
            "--universal",
            "--python-version",
            "3.11",
            "--generate-hashes",
            "--no-config",  # a uv.toml of the user's must not change what is pinned
            "--quiet",
            "--custom-compile-command",
            "make lock",
            *constraints,
            *extra,
        ],
        input="\n".join(requirements) + "\n",
        text=True,
        check=True,
        cwd=ROOT,
    )
    count = sum(1 for line in out.read_text().splitlines() if re.match(r"[a-z0-9]", line))
    print(f"jobwire: {out.relative_to(ROOT)}: {count} packages", file=sys.stderr)


def main(argv: list[str]) -> None:
    tool = uv()
    OUT.mkdir(exist_ok=True)
    wanted = inputs()
    for name in ("runtime", "build", "dev"):  # dev last: it is held to the other two
        compile_lock(tool, name, wanted[name], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
