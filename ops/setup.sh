#!/usr/bin/env bash
# Installs what building and testing vledger needs, only when it is missing (idempotent).
# Sourced by ops/run.sh and ops/test.sh; run it directly to prepare a machine.
#   ops/setup.sh          build dependencies (Rust toolchain check, libclang for RocksDB)
#   ops/setup.sh --test   build dependencies and the Python packages the black-box tests use
set -euo pipefail

vledger_log() { printf '[setup] %s\n' "$*" >&2; }

vledger_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    vledger_log "need root to run: $*"; return 1; fi
}

vledger_apt_install() {
  vledger_log "installing Debian packages: $*"
  vledger_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  vledger_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# True when libclang's C library (what bindgen loads: libclang.so, libclang-14.so.1, ...) is
# installed. libclang-cpp (the C++ interface, which LLVM's packages bring along) does not count.
# VLEDGER_LIBCLANG_DIRS replaces the directories searched (the tests use it).
vledger_has_libclang() {
  local dir file
  local dirs="${VLEDGER_LIBCLANG_DIRS:-${LIBCLANG_PATH:-} /usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu
    /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib}"
  for dir in $dirs; do
    for file in "$dir"/libclang.so* "$dir"/libclang-[0-9]*.so*; do
      [ -e "$file" ] && return 0
    done
  done
  return 1
}

vledger_ensure_build_deps() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || { vledger_log "cargo is missing: install the Rust toolchain (https://rustup.rs) first"; return 1; }
  local missing=()
  # The rocksdb crate generates its bindings with bindgen, which loads libclang at build time.
  vledger_has_libclang || missing+=(libclang-dev)
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  if [ ${#missing[@]} -gt 0 ]; then vledger_apt_install "${missing[@]}"; fi
  # A build cache outside the clone: reused across runs when present, rebuilt when not.
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vledger-target}"
}

vledger_ensure_test_deps() {
  # The suite checks formatting and lints.
  local component
  for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
      if command -v rustup >/dev/null 2>&1; then rustup component add "$component"; else
        vledger_log "cargo ${component/rustfmt/fmt} is missing: install the $component component"; return 1; fi
    fi
  done
  local py_missing=()
  python3 -c 'import cryptography' 2>/dev/null || py_missing+=(cryptography)
  python3 -c 'import requests' 2>/dev/null || py_missing+=(requests)
  python3 -c 'import pytest' 2>/dev/null || py_missing+=(pytest)
  # schemathesis checks the running node against its own /openapi.json.
  python3 -c 'import schemathesis' 2>/dev/null || py_missing+=("schemathesis>=4.32,<5")
  if [ ${#py_missing[@]} -gt 0 ]; then
    vledger_log "installing Python packages: ${py_missing[*]}"
    python3 -m pip install --quiet --disable-pip-version-check "${py_missing[@]}"
  fi
  # The audit report test renders the HTML page in headless Chromium.
  [ -x /usr/bin/chromium ] || vledger_apt_install chromium
  # ops/federation.sh, which a test runs, reads the nodes with curl.
  command -v curl >/dev/null 2>&1 || vledger_apt_install curl
  command -v cargo-nextest >/dev/null 2>&1 || vledger_log "cargo-nextest not found; tests run with cargo test"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  vledger_ensure_build_deps
  if [ "${1:-}" = "--test" ]; then vledger_ensure_test_deps; fi
  vledger_log "ready"
fi
