#!/usr/bin/env bash
# Check docker-compose.yml with the real `docker compose config`, which needs no Docker engine.
# Docker's client here has no compose plugin, so the plugin is built once from the Go module
# proxy into a cache (a few minutes the first time, nothing after); with no Go, Debian's
# docker-compose (v1, the same compose schema) is the fallback.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${JOBWIRE_TOOLS_CACHE:-$HOME/.cache/jobwire/tools}
compose_version=v2.40.3
plugin="$tools/bin/docker-compose-$compose_version"

if ! docker compose version >/dev/null 2>&1 && [ ! -x "$plugin" ] && command -v go >/dev/null 2>&1; then
  echo "jobwire: building docker compose $compose_version from the Go module proxy into $tools (first run only)" >&2
  src=$(mktemp -d)
  dir=$(go mod download -json "github.com/docker/compose/v2@$compose_version" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  cp -r "$dir/." "$src" && chmod -R u+w "$src"
  mkdir -p "$tools/bin"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$plugin" ./cmd)
  rm -rf "$src"
fi

if ! docker compose version >/dev/null 2>&1 && [ -x "$plugin" ]; then
  # Install it as a Docker CLI plugin, so the check below is the real `docker compose`.
  mkdir -p "$HOME/.docker/cli-plugins"
  ln -sf "$plugin" "$HOME/.docker/cli-plugins/docker-compose"
fi

if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config --quiet
else
  if ! command -v docker-compose >/dev/null 2>&1; then
    echo "jobwire: installing Debian's docker-compose to check docker-compose.yml" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  fi
  docker-compose -f docker-compose.yml config --quiet
fi
echo "docker-compose.yml is valid"
