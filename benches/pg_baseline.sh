#!/usr/bin/env bash
# vledger against a PostgreSQL baseline on this machine, in one run:
#
#   1. starts a throwaway PostgreSQL (Debian's postgresql package, installed with apt if
#      missing) from a fresh initdb in a temporary directory, on a free loopback port;
#   2. runs the baseline (benches/src/bin/pg_baseline.rs): the same entries vledger writes,
#      appended with a SHA-256 hash chain and synchronous_commit on, (1) by one writer in COPY
#      batches of PG_BATCH, one transaction each, and (2) by PG_CLIENTS clients with one entry
#      per transaction under SELECT ... FOR UPDATE of the chain head;
#   3. runs `vledger-load` (limits, writer, in process, HTTP with PG_CLIENTS clients) with
#      --baseline, so that its table ends with vledger's ratios against both forms, and with
#      --max-batch PG_BATCH: its nodes' batches (synced writes) hold at most as many commands
#      as PostgreSQL's COPY transactions;
#   4. stops PostgreSQL and removes its directory.
#
#   benches/pg_baseline.sh [extra vledger-load arguments]
#   env: COMMANDS (20000), PG_ENTRIES (100000), PG_BATCH (1000), PG_CLIENTS (16),
#        PG_CLIENT_ENTRIES (20000), NO_BUILD (set: use the release binaries as they are), OUT (directory for the JSON results, default a new temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."

commands="${COMMANDS:-20000}"
pg_entries="${PG_ENTRIES:-100000}"
pg_batch="${PG_BATCH:-1000}"
pg_clients="${PG_CLIENTS:-16}"
pg_client_entries="${PG_CLIENT_ENTRIES:-20000}"
target_dir="${CARGO_TARGET_DIR:-target}"

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "== installing postgresql (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

# initdb and postgres refuse to run as root: run them as the postgres user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/vledger-pg-XXXXXX")
out="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/vledger-pg-results-XXXXXX")}"
mkdir -p "$out"
if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap cleanup EXIT INT TERM

echo "== PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') in $pg_dir, port $port"
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$pg_dir -c synchronous_commit=on -c fsync=on -c max_connections=300" \
  start >/dev/null
url="host=127.0.0.1 port=$port user=postgres dbname=postgres"

if [ -z "${NO_BUILD:-}" ]; then
  echo "== building"
  cargo build --release --workspace --all-targets
fi
echo "== load: $(uptime)"

echo "== PostgreSQL baseline"
nice -n -10 "$target_dir/release/pg_baseline" --url "$url" --entries "$pg_entries" --batch "$pg_batch" \
  --clients "$pg_clients" --client-entries "$pg_client_entries" --json >"$out/pg.json"

echo "== vledger-load"
nice -n -10 "$target_dir/release/vledger-load" --commands "$commands" --clients "$pg_clients" \
  --max-batch "$pg_batch" \
  --baseline "$out/pg.json" --json "$@" >"$out/vledger.json"
echo "== load: $(uptime)"
echo "results: $out/pg.json $out/vledger.json"
