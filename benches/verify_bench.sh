#!/usr/bin/env bash
# Offline verification: `vledger verify` throughput (entries/s) on an archive of N entries,
# against the 2-core ed25519 `verify_strict` rate measured in the same run by
# `vledger-load --phases limits`, and the verifier's peak RSS (`/usr/bin/time -v`).
#
#   benches/verify_bench.sh [ENTRIES ...]      default: 100000 1000000
#
# Each archive is the log of a real node: `vledger-load --phases writer --keep-data` drives
# ENTRIES commands of the voucher lifecycle mix (issue, escrow order, funding, delivery,
# confirmation, claim, approval, each signed by its actor) into a durable node, and
# `vledger export --data` writes its archive (every batch's checkpoint included). Made once and
# kept in VLEDGER_BENCH_DIR (default ${TMPDIR:-/tmp}/vledger-bench-verify; about 1.5 KB per
# entry). VLEDGER_MIX=party.register makes archives of registrations instead (each brings a new
# key, whose whole key check costs as much as a signature check). VLEDGER_BIN and VLEDGER_LOAD_BIN pick the
# binaries (default: the release builds of this tree).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
if [ ${#sizes[@]} -eq 0 ]; then
  sizes=(100000 1000000)
fi
dir="${VLEDGER_BENCH_DIR:-${TMPDIR:-/tmp}/vledger-bench-verify}"
mkdir -p "$dir"
target="${CARGO_TARGET_DIR:-$HOME/.cache/vledger-target}"
vledger="${VLEDGER_BIN:-$target/release/vledger}"
load="${VLEDGER_LOAD_BIN:-$target/release/vledger-load}"
for bin in "$vledger" "$load"; do
  [ -x "$bin" ] || { echo "no binary at $bin: cargo build --release --workspace --all-targets" >&2; exit 1; }
done
mix="${VLEDGER_MIX:-voucher.lifecycle}"

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); binary: $vledger; cores: $(nproc)"
for n in "${sizes[@]}"; do
  archive="$dir/$mix-$n.jsonl"
  if [ ! -s "$archive" ]; then
    echo "== making an archive of $n commands ($mix) in $archive"
    rm -rf "$dir/node-$n"
    "$load" --phases writer --mix "$mix" --commands "$n" --dir "$dir" --keep-data "$dir/node-$n" >/dev/null
    "$vledger" export --data "$dir/node-$n" --out "$archive.tmp"
    rm -rf "$dir/node-$n"
    mv "$archive.tmp" "$archive"
  fi
  echo "== limits (same run)"
  "$load" --phases limits --probe-seconds 2 --json > "$dir/limits.json" 2>/dev/null
  echo "== vledger verify $archive"
  /usr/bin/time -v "$vledger" verify "$archive" --work-dir "$dir" --json > "$dir/report-$n.json" 2> "$dir/time-$n.txt" || {
    echo "verify failed:"; head -40 "$dir/report-$n.json"; cat "$dir/time-$n.txt"; exit 1; }
  python3 - "$dir/limits.json" "$dir/report-$n.json" "$dir/time-$n.txt" "$(stat -c %s "$archive")" <<'PY'
import json, re, sys
limits = json.load(open(sys.argv[1]))["limits"]
report = json.load(open(sys.argv[2]))
time_text = open(sys.argv[3]).read()
rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_text).group(1))
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", time_text).group(1)
assert report["passed"], report["failures"][:5]
rate = report["entries"] / report["seconds"]
vs = limits["verify_strict_per_second_all_threads"]
env = limits["envelope_parse_and_verify_per_second_all_threads"]
print(f"entries {report['entries']:,}  archive {int(sys.argv[4]) / 2**20:,.0f} MiB  verify {report['seconds']:.1f} s (wall {wall})")
print(f"verify rate {rate:,.0f} entries/s; verify_strict on {limits['threads']} threads {vs:,.0f}/s; "
      f"ratio {rate / vs:.3f} (goal >= 0.8); envelope checks {env:,.0f}/s")
print(f"peak RSS {rss_kib / 1024:,.0f} MiB (goal < 256 MiB at 1M entries)")
PY
done
