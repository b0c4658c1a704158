#!/usr/bin/env bash
# A node at scale: drives N commands of the voucher lifecycle mix into a durable node (signed in
# chunks as they go, so that the load generator's memory stays flat), then measures, on the
# store that leaves:
#   1. the resident memory of the process that ingested it (VmRSS at the end, VmHWM);
#   2. `vledger serve` on it: resident memory after opening, after 2,000 inclusion and 2,000
#      consistency proofs at random positions over HTTP (with their mean latency), and after
#      WRITES more commands (default 300000) sent to it over HTTP by 16 clients
#      (`vledger-load --target`, signed by the admin key the ingest kept);
#   3. `vledger rebuild --from-events` (and, with VLEDGER_REBUILD_REPLAY=1, `vledger rebuild`,
#      which checks every signature again): entries per second and peak resident memory.
#
#   benches/node_at_scale.sh [COMMANDS]        default: 10000000 (a 14 GB store, plus room
#                                              for the rebuild's scratch state beside it)
#
# The store is kept in VLEDGER_BENCH_DIR (default ${TMPDIR:-/tmp}/vledger-bench-scale) as
# node-COMMANDS and reused by the next run with the same COMMANDS; delete it to reclaim the
# space. VLEDGER_BIN and VLEDGER_LOAD_BIN pick the binaries (default: the release builds of
# this tree).
set -euo pipefail
cd "$(dirname "$0")/.."

commands="${1:-10000000}"
dir="${VLEDGER_BENCH_DIR:-${TMPDIR:-/tmp}/vledger-bench-scale}"
mkdir -p "$dir"
target="${CARGO_TARGET_DIR:-$HOME/.cache/vledger-target}"
vledger="${VLEDGER_BIN:-$target/release/vledger}"
load="${VLEDGER_LOAD_BIN:-$target/release/vledger-load}"
for bin in "$vledger" "$load"; do
  [ -x "$bin" ] || { echo "no binary at $bin: cargo build --release --workspace --bins" >&2; exit 1; }
done
node="$dir/node-$commands"

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); binary: $vledger; cores: $(nproc)"
if [ ! -d "$node" ]; then
  echo "== ingesting $commands commands (writer phase, signed in chunks of 16384)"
  /usr/bin/time -f "ingest: wall %e s, max RSS %M KiB" \
    "$load" --phases writer --commands "$commands" --sign-chunk 16384 \
      --max-seconds 36000 --dir "$dir" --keep-data "$node" --json > "$dir/ingest-$commands.json"
fi
du -sh "$node"

echo "== vledger serve on the store"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$vledger" serve --data "$node" --region cq --origin vledger.bench/cq --listen "127.0.0.1:$port" \
  > "$dir/serve.log" 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true' EXIT
python3 - "$port" "$serve_pid" <<'PY'
import json, random, sys, time, urllib.request
port, pid = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"

def memory():
    status = open(f"/proc/{pid}/status").read()
    field = lambda name: int(next(l for l in status.splitlines() if l.startswith(name)).split()[1]) / 1024
    return field("VmRSS:"), field("VmHWM:")

def get(path):
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return json.load(response)

started = time.time()
while True:
    try:
        node = get("/v1/node")
        break
    except OSError:
        if time.time() - started > 600:
            raise SystemExit("the node did not answer within 10 minutes")
        time.sleep(0.2)
opened = time.time() - started
size = node["tree_size"]
rss, hwm = memory()
print(f"opened a node of {size:,} entries in {opened:.1f} s: RSS {rss:,.0f} MiB (peak {hwm:,.0f} MiB)")
random.seed(1)
for kind in ("inclusion", "consistency"):
    began = time.time()
    for _ in range(2000):
        a = random.randrange(1, size)
        path = (f"/v1/proofs/inclusion?index={a - 1}&size={size}" if kind == "inclusion"
                else f"/v1/proofs/consistency?from={a}&to={size}")
        get(path)
    mean_ms = (time.time() - began) / 2000 * 1e3
    rss, hwm = memory()
    print(f"after 2,000 {kind} proofs (mean {mean_ms:.2f} ms over HTTP, one client): "
          f"RSS {rss:,.0f} MiB (peak {hwm:,.0f} MiB)")
PY
writes="${WRITES:-300000}"
if [ "$writes" -gt 0 ]; then
  echo "== $writes more commands over HTTP to the served node (16 clients)"
  "$load" --phases http --target "http://127.0.0.1:$port" \
    --admin-key "$node/keys/admin.pem" --commands "$writes" --clients 16 --max-seconds 3600 \
    --dir "$dir" 2>&1 | grep -E "^  HTTP|accepted|refused" || true
  python3 - "$serve_pid" <<'PY'
import sys
status = open(f"/proc/{sys.argv[1]}/status").read()
field = lambda name: int(next(l for l in status.splitlines() if l.startswith(name)).split()[1]) / 1024
print(f"the served node after the writes: RSS {field('VmRSS:'):,.0f} MiB (peak {field('VmHWM:'):,.0f} MiB)")
PY
fi
kill $serve_pid; wait $serve_pid 2>/dev/null || true
trap - EXIT

modes=(--from-events)
[ "${VLEDGER_REBUILD_REPLAY:-0}" = 1 ] && modes+=(--replay)
for mode in "${modes[@]}"; do
  echo "== vledger rebuild $mode"
  flag=$([ "$mode" = --from-events ] && echo --from-events || true)
  /usr/bin/time -f "wall %e s, max RSS %M KiB" "$vledger" rebuild --data "$node" $flag 2>&1 | tail -3
done
