#!/usr/bin/env bash
# Sets up a fresh machine (idempotently) and runs the whole test suite: formatting and lints,
# Rust unit, integration, property and crash tests, then the black-box Python tests against the
# real binary.
#
# Everything is built in the release profile, the one ops/run.sh builds, so that RocksDB's C++
# is compiled once for both commands; the `self-check` features turn on the cross-checks of fast
# paths against their references that debug builds make (`self_check!`), and the release profile
# keeps overflow checks on.
set -euo pipefail
cd "$(dirname "$0")/.."
source ops/setup.sh
vledger_ensure_build_deps
vledger_ensure_test_deps
started=$(date +%s)
profile=(--release --features vledger-tlog/self-check,vledger-domain/self-check,vledger-wire/self-check)
cargo fmt --all --check
cargo build --locked --workspace --all-targets "${profile[@]}"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast "${profile[@]}"
  # nextest runs no documentation examples; cargo test does.
  cargo test --locked --workspace --doc "${profile[@]}"
else
  cargo test --locked --workspace --no-fail-fast "${profile[@]}"
fi
cargo clippy --locked --workspace --all-targets "${profile[@]}" -- -D warnings
export VLEDGER_BIN="$CARGO_TARGET_DIR/release/vledger"
python3 tests/python/ed25519_openssl.py
python3 tests/python/check_format_vectors.py
python3 -m pytest -q tests/python
echo "test suite passed in $(( $(date +%s) - started ))s"
