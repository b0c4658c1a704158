#!/usr/bin/env bash
# The long benchmarks, not run in CI: inclusion and consistency proofs over trees of 10M and
# 100M leaves (in RocksDB at both sizes, in memory up to VLEDGER_BENCH_MEMORY_TREE_MAX), then
# `vledger-load` with 100,000 commands. The PostgreSQL baseline is benches/pg_baseline.sh.
#
#   benches/run_long.sh [TREE_SIZE ...]        default: 10000000 100000000
#
# Needs about 25 GB of free disk for the 100M-leaf store (populating it takes tens of minutes on
# 2 cores) and about 2 GB of memory for the 10M-leaf in-memory tree. The populated stores are
# kept in VLEDGER_BENCH_STORE_ROOT (default ${TMPDIR:-/tmp}/vledger-bench-trees) and reused by
# the next run; delete that directory to reclaim the space.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
if [ ${#sizes[@]} -eq 0 ]; then
  sizes=(10000000 100000000)
fi
store_root="${VLEDGER_BENCH_STORE_ROOT:-${TMPDIR:-/tmp}/vledger-bench-trees}"
mkdir -p "$store_root"
criterion_args=(--warm-up-time 1 --measurement-time 3 --sample-size 20)

for size in "${sizes[@]}"; do
  echo "== Merkle proofs over $size leaves"
  VLEDGER_BENCH_TREE_SIZE="$size" \
    VLEDGER_BENCH_STORE_DIR="$store_root/tree-$size" \
    VLEDGER_BENCH_MEMORY_TREE_MAX="${VLEDGER_BENCH_MEMORY_TREE_MAX:-10000000}" \
    cargo bench --workspace --bench merkle -- "${criterion_args[@]}"
done

echo "== vledger-load, 100000 commands"
cargo build --release --workspace --all-targets
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/release/vledger-load" --commands 100000
"$target_dir/release/vledger-load" --commands 100000 --clients 64 --phases http
