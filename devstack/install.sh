#!/usr/bin/env bash
# Install what jobwire's run and test commands need: Java 17 (for Kafka), PostgreSQL's server
# (for the scale-out store's tests), a C linker and Rust (for the matching index, native/), and a
# virtualenv with jobwire and every dependency at the version and hash in requirements/dev.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
python=${2:-python3}

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
# Rust links with the system's C compiler.
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "jobwire: installing system packages: ${need[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "jobwire: run as root, or install them yourself: apt-get install ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# A cargo new enough for native/, installed with rustup into ~/.cargo when there is none.
cargo_bin=$(PYTHON=$python bash devstack/rust.sh)
export PATH="$cargo_bin:$PATH"

if [ ! -x "$venv/bin/python" ]; then
  echo "jobwire: creating virtualenv $venv" >&2
  "$python" -m venv "$venv"
fi
# Build backends run without isolation (their pinned versions are in the lock), and maturin's
# calls its own command: the virtualenv's bin/ must be on PATH.
export PATH="$(cd "$venv/bin" && pwd):$PATH"
pip=("$venv/bin/python" -m pip)
echo "jobwire: installing the pinned dependencies (requirements/dev.txt) into $venv" >&2
"${pip[@]}" install -q --require-hashes -r requirements/dev.txt
echo "jobwire: building the matching index (native/, Rust; about a minute the first time)" >&2
# Into native/target/wheels, where the packaging test picks the wheel up again.
rm -rf native/target/wheels
"${pip[@]}" wheel -q --no-deps --no-build-isolation ./native -w native/target/wheels
"${pip[@]}" install -q --no-deps --force-reinstall native/target/wheels/jobwire_native-*.whl
# (setuptools warns on every editable install that a folder named like a package wins imports:
# that is the point here.)
PYTHONWARNINGS="ignore:Editable installation" "${pip[@]}" install -q --no-deps --no-build-isolation -e .
if ! problems=$("${pip[@]}" check); then
  echo "$problems" >&2
  echo "jobwire: pyproject.toml asks for what requirements/dev.txt lacks: run \`make lock\`" >&2
  exit 1
fi
