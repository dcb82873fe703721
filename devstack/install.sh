#!/usr/bin/env bash
# Install what jobwire's run and test commands need: Java 17 (for Kafka), PostgreSQL's server
# (for the scale-out store's tests) and a virtualenv with jobwire, its matching index (Rust,
# built here from native/) and its pinned dependencies.
set -euo pipefail
venv=${1:-.venv}
python=${2:-python3}

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "jobwire: installing system packages: ${need[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "jobwire: run as root, or install them yourself: apt-get install ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "jobwire: the matching index (native/) is written in Rust and needs cargo 1.82 or newer." >&2
  echo "jobwire: install it from https://rustup.rs (curl https://sh.rustup.rs -sSf | sh), then run this again." >&2
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "jobwire: creating virtualenv $venv" >&2
  "$python" -m venv "$venv"
fi
echo "jobwire: installing jobwire and its pinned dependencies into $venv" >&2
"$venv/bin/pip" install -q --upgrade pip
echo "jobwire: building the matching index (native/, Rust; about a minute the first time)" >&2
"$venv/bin/pip" install -q ./native
"$venv/bin/pip" install -q -e '.[dev]'
