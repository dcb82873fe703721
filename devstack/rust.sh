#!/usr/bin/env bash
# The Rust toolchain native/ builds with: a cargo at least as new as native/Cargo.toml's
# rust-version, or, when there is none, Rust's minimal stable toolchain installed with rustup
# into the user's home, without a question. Debian's own cargo (1.65 on bookworm) is too old, and
# speaks only the old git index. Prints the directory of the cargo to put first on PATH; what it
# does goes to stderr, in one line.
#
#   bash devstack/rust.sh            # for `make install`: cargo
#   bash devstack/rust.sh --lints    # for `make test`: cargo with rustfmt and clippy
#
# rustup-init is pinned and checked against its SHA-256 before it runs (no `curl | sh`). Like
# rustup, it honours CARGO_HOME and RUSTUP_HOME (default ~/.cargo, ~/.rustup) and
# RUSTUP_UPDATE_ROOT (where rustup-init is fetched from, default https://static.rust-lang.org/rustup).
set -euo pipefail
cd "$(dirname "$0")/.."
lints=${1:-}
python=${PYTHON:-python3}

rustup_version=1.28.2
# rustup-init's SHA-256 per host (from …/rustup/archive/1.28.2/TRIPLE/rustup-init.sha256; the
# official rust Docker images pin the same).
rustup_sha256() {
  case "$1" in
    x86_64-unknown-linux-gnu) echo 20a06e644b0d9bd2fbdbfd52d42540bdde820ea7df86e92e533c073da0cdd43c ;;
    aarch64-unknown-linux-gnu) echo e3853c5a252fca15252d07cb23a1bdd9377a8c6f3efa01531109281ae47f841c ;;
    x86_64-unknown-linux-musl) echo e6599a1c7be58a2d8eaca66a80e0dc006d87bbcf780a58b7343d6e14c1605cb2 ;;
    *) return 1 ;;
  esac
}

say() { echo "jobwire: $*" >&2; }
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' native/Cargo.toml)
cargo_home=${CARGO_HOME:-$HOME/.cargo}

# Is version $1 at least $need? (`sort -V -C` succeeds when its input is already in order.)
new_enough() { printf '%s\n%s\n' "$need" "$1" | sort -V -C; }

usable_cargo() {
  local cargo version seen=
  for cargo in "$(command -v cargo || true)" "$cargo_home/bin/cargo"; do
    [ -n "$cargo" ] && [ -x "$cargo" ] && [ "$cargo" != "$seen" ] || continue
    seen=$cargo
    version=$("$cargo" --version 2>/dev/null | awk '{print $2}') || continue
    if new_enough "${version%%-*}"; then
      dirname "$cargo"
      return 0
    fi
    say "cargo $version at $cargo is older than native/ needs ($need); not using it"
  done
  return 1
}

host_triple() {
  local arch libc=gnu
  arch=$(uname -m)
  [ "$arch" = arm64 ] && arch=aarch64
  if ldd --version 2>&1 | grep -qi musl; then libc=musl; fi
  echo "$arch-unknown-linux-$libc"
}

install_rust() {
  local triple sha url init got
  triple=$(host_triple)
  if [ "$(uname -s)" != Linux ] || ! sha=$(rustup_sha256 "$triple"); then
    say "no cargo $need or newer here, and no pinned rustup for $(uname -s) $triple:"
    say "install Rust from https://rustup.rs, then run this again"
    return 1
  fi
  url="${RUSTUP_UPDATE_ROOT:-https://static.rust-lang.org/rustup}/archive/$rustup_version/$triple/rustup-init"
  say "no cargo $need or newer: installing Rust (stable, minimal profile, with rustfmt and clippy) with rustup $rustup_version into $cargo_home"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  init=$tmp/rustup-init
  if ! "$python" - "$url" "$init" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=120) as answer, open(sys.argv[2], "wb") as out:
    out.write(answer.read())
EOF
  then
    say "could not download $url: check the connection, or install Rust from https://rustup.rs"
    return 1
  fi
  got=$(sha256sum "$init" | awk '{print $1}')
  if [ "$got" != "$sha" ]; then
    say "$url has SHA-256 $got, not the pinned $sha; not running it. Install Rust from https://rustup.rs, then run this again"
    return 1
  fi
  chmod +x "$init"
  # --no-modify-path: the user's shell files are theirs; make puts cargo on PATH itself. Its
  # own account (and advice to edit PATH) is shown only if it fails.
  if ! CARGO_HOME=$cargo_home "$init" -y --no-modify-path --profile minimal \
    --default-toolchain stable --component rustfmt,clippy >"$tmp/log" 2>&1; then
    cat "$tmp/log" >&2
    say "rustup-init failed (above); install Rust from https://rustup.rs, then run this again"
    return 1
  fi
}

if ! dir=$(usable_cargo); then
  install_rust
  dir=$(usable_cargo) || { say "rustup ran, but $cargo_home/bin/cargo is still missing"; exit 1; }
fi

if [ "$lints" = --lints ] && ! { PATH="$dir:$PATH" cargo fmt --version && PATH="$dir:$PATH" cargo clippy --version; } >/dev/null 2>&1; then
  if PATH="$dir:$PATH" command -v rustup >/dev/null 2>&1; then
    say "adding rustfmt and clippy to the Rust toolchain (make test runs cargo fmt and cargo clippy)"
    PATH="$dir:$PATH" rustup component add rustfmt clippy >&2
  else
    say "make test runs cargo fmt and cargo clippy, which $dir/cargo lacks: install them, then run this again"
    exit 1
  fi
fi
echo "$dir"
