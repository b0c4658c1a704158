#!/usr/bin/env bash
# Sets up a fresh machine (idempotently) and runs the whole test suite: Rust unit, integration,
# property and crash tests, then the black-box Python tests against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source ops/setup.sh
vledger_ensure_build_deps
vledger_ensure_test_deps
started=$(date +%s)
cargo build --locked --workspace --all-targets
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast
else
  cargo test --locked --workspace --no-fail-fast
fi
export VLEDGER_BIN="$CARGO_TARGET_DIR/debug/vledger"
python3 tests/python/ed25519_openssl.py
python3 tests/python/check_format_vectors.py
python3 -m pytest -q tests/python
echo "test suite passed in $(( $(date +%s) - started ))s"
