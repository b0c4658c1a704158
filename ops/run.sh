#!/usr/bin/env bash
# Sets up a fresh machine (idempotently), builds vledger in release mode and runs one node of a
# demo region on 127.0.0.1:8080 with its data in ./data. Extra arguments go to `vledger serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source ops/setup.sh
vledger_ensure_build_deps
cargo build --release --locked --bin vledger
exec "$CARGO_TARGET_DIR/release/vledger" serve --demo --data ./data --listen 127.0.0.1:8080 "$@"
