#!/usr/bin/env bash
# The test command: lint, types, the compose file, then every test against real servers.
set -euo pipefail
venv=${1:-.venv}
bin="$venv/bin"

echo "== ruff"
"$bin/ruff" check .
"$bin/ruff" format --check .
echo "== mypy --strict"
"$bin/mypy"
echo "== cargo fmt, clippy (native/)"
cargo fmt --manifest-path native/Cargo.toml --check
cargo clippy --quiet --manifest-path native/Cargo.toml --release -- -D warnings
echo "== alembic check (the models in service/store/schema.py against the migrations)"
check_db=$(mktemp -d)
export JOBWIRE_STORE__URL="sqlite+aiosqlite:///$check_db/check.db"
"$bin/jobwire" db upgrade >"$check_db/upgrade.log" 2>&1 || { cat "$check_db/upgrade.log"; exit 1; }
"$bin/alembic" check
unset JOBWIRE_STORE__URL
rm -rf "$check_db"
echo "== docker compose config"
bash devstack/compose_check.sh
echo "== pytest"
set +e
# Every test, the slow fault-injection ones included (plain pytest skips those).
"$bin/pytest" -m "slow or not slow" "${@:2}"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
