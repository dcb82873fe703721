"""Which jobwire a row runs: an executable, or a git revision of this checkout.

A revision is checked out into a worktree of its own under the benchmark's work directory,
and run by a small wrapper script with this virtualenv's Python and the worktree first on
`PYTHONPATH` (ahead of the editable install's finder, which Python consults last; `-P`
keeps the caller's directory, which may be this checkout, off the path), so its
`service/`, `consumers/` and `config/` are the revision's and everything else, the
dependencies and the compiled matcher included, is this virtualenv's. That is right for
comparing nearby commits; a revision with other pinned dependencies or another `native/`
needs a virtualenv of its own, passed as an executable.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Build:
    executable: Path
    name: str  # short, for the tables: a revision's short hash, or "this checkout"
    description: str  # the commit and its subject, for the header
    worktree: Path | None = None


def _git(*args: str, cwd: Path = CHECKOUT) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def executable_build(executable: Path) -> Build:
    """The build an executable runs: the checkout whose virtualenv holds it (an editable
    install, as `make install` makes), at its commit, "-dirty" with uncommitted changes (so
    this checkout's work can be measured against its own HEAD)."""
    checkout = executable.resolve().parents[2]
    try:
        short = _git("rev-parse", "--short", "HEAD", cwd=checkout)
        subject = _git("log", "-1", "--format=%s", cwd=checkout)
        dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=checkout)
    except (OSError, subprocess.CalledProcessError):
        return Build(executable, executable.name, f"{executable} (not in a git checkout)")
    changes = " (with uncommitted changes)" if dirty else ""
    name = short + ("-dirty" if dirty else "")
    return Build(executable, name, f"{checkout} at {short} {subject}{changes}")


def build_of(spec: str, workdir: Path) -> Build:
    """`spec` as a build: an executable file, or a revision of this checkout (a commit, a
    branch, `HEAD~2`), checked out into `workdir`. Raises ValueError naming what it is not."""
    path = Path(spec)
    if path.is_file():
        if not os.access(path, os.X_OK):
            raise ValueError(f"{spec} is a file but not executable")
        return executable_build(path)
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    except subprocess.CalledProcessError:
        raise ValueError(
            f"{spec} is neither an executable nor a revision of {CHECKOUT} "
            "(try a commit hash, a branch or HEAD~1)"
        ) from None
    short = _git("rev-parse", "--short", commit)
    worktree = workdir / f"build-{short}"
    if not worktree.exists():
        _git("worktree", "add", "--detach", "--quiet", str(worktree), commit)
    wrapper = workdir / f"jobwire-{short}"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"# jobwire at {short}: its worktree first on the path, this virtualenv's Python.\n"
        f"PYTHONPATH={shlex.quote(str(worktree))} exec {shlex.quote(sys.executable)} -P "
        "-c 'import sys; from service.cli import app; sys.exit(app())' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    subject = _git("log", "-1", "--format=%s", commit)
    return Build(wrapper, short, f"revision {short} {subject} (worktree {worktree})", worktree)


def remove_worktrees(builds: list[Build]) -> None:
    """Take the revisions' worktrees out of the checkout's list (and off the disk)."""
    for build in builds:
        if build.worktree is not None:
            subprocess.run(
                ["git", "-C", str(CHECKOUT), "worktree", "remove", "--force", str(build.worktree)],
                capture_output=True,
                check=False,
            )
