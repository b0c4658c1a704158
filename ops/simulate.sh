#!/usr/bin/env bash
# The long run of the federation's simulation (federation/tests/simulation.rs): many more seeds
# than the suite runs, on every core, built with the suite's profile and features so that it
# shares the suite's compilation. Prints the seeds run and the totals (adoptions, failed steps,
# forks caught with evidence, ...); a seed that fails is named, to be rerun alone with
# VLEDGER_SIM_SEED=<n>.
#
#   ops/simulate.sh                    # 2000 seeds from 0
#   ops/simulate.sh 500 100000         # 500 seeds from 100000
#   VLEDGER_SIM_VERBOSE=1 ops/simulate.sh 20    # and a line per seed
#   VLEDGER_SIM_SEED=17 ops/simulate.sh         # seed 17 alone
set -euo pipefail
cd "$(dirname "$0")/.."
source ops/setup.sh
vledger_ensure_build_deps

export VLEDGER_SIM_SEEDS="${1:-2000}"
export VLEDGER_SIM_FIRST_SEED="${2:-0}"
export VLEDGER_SIM_THREADS="${VLEDGER_SIM_THREADS:-$(nproc)}"
profile=(--release --features vledger-tlog/self-check,vledger-domain/self-check,vledger-wire/self-check)
started=$(date +%s)
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --locked --workspace "${profile[@]}" --no-capture \
    -E 'package(vledger-federation) & binary(simulation)'
else
  cargo test --locked --workspace "${profile[@]}" --test simulation -- --nocapture
fi
echo "simulation run passed in $(( $(date +%s) - started ))s"
