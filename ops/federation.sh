#!/usr/bin/env bash
# Starts a three-region federation on loopback: Chongqing (cq), Sichuan (sc) and Chengdu (cd),
# each its own node with its own key, data directory and log, each mirroring and adopting the
# other two. Prints `region <id> <url>` for each region as soon as it answers, waits until the
# regions have adopted each other, then runs a short tour: a lab registered in Sichuan becomes
# known in Chongqing and Chengdu, and each node shows its view of the federation. The nodes run
# until Ctrl-C (or, with VLEDGER_FEDERATION_EXIT=1, stop after the tour).
#
#   ops/federation.sh                 # data in ./federation, ports 8181-8183
#   ops/federation.sh /tmp/fed        # another data directory
#   VLEDGER_FEDERATION_PORT=9000 ops/federation.sh   # ports 9000-9002
set -euo pipefail
cd "$(dirname "$0")/.."

BASE="${1:-./federation}"
PORT="${VLEDGER_FEDERATION_PORT:-8181}"
REGIONS=(cq sc cd)
declare -A NAMES=([cq]="Chongqing Science and Technology Bureau" [sc]="Sichuan Science and Technology Department" [cd]="Chengdu Science and Technology Bureau")

if [ -n "${VLEDGER_BIN:-}" ]; then
  VLEDGER="$VLEDGER_BIN"
else
  source ops/setup.sh
  vledger_ensure_build_deps
  cargo build --release --locked --bin vledger >&2
  VLEDGER="$CARGO_TARGET_DIR/release/vledger"
fi

json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
url_of() { echo "http://127.0.0.1:$((PORT + $1))"; }

declare -A URL VKEY
for i in "${!REGIONS[@]}"; do
  r="${REGIONS[$i]}"
  mkdir -p "$BASE/$r/keys"
  [ -f "$BASE/$r/keys/node.pem" ] || "$VLEDGER" keygen --out "$BASE/$r/keys/node.pem" >/dev/null 2>&1
  URL[$r]="$(url_of "$i")"
  VKEY[$r]="$("$VLEDGER" pubkey --key "$BASE/$r/keys/node.pem" --origin "vledger.local/$r")"
done

PIDS=()
stop() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT

for i in "${!REGIONS[@]}"; do
  r="${REGIONS[$i]}"
  peers=()
  for other in "${REGIONS[@]}"; do
    [ "$other" = "$r" ] || peers+=(--peer "$other=${VKEY[$other]}@${URL[$other]}")
  done
  "$VLEDGER" serve --demo --data "$BASE/$r" --region "$r" --region-name "${NAMES[$r]}" \
    --listen "127.0.0.1:$((PORT + i))" "${peers[@]}" >"$BASE/$r/node.log" 2>&1 &
  PIDS+=("$!")
done

for r in "${REGIONS[@]}"; do
  for _ in $(seq 1 300); do
    curl -fsS "${URL[$r]}/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "${URL[$r]}/healthz" >/dev/null || { echo "region $r did not start; see $BASE/$r/node.log" >&2; exit 1; }
  echo "region $r ${URL[$r]}"
done

# Each node has adopted both others once every peer's mirror shows an adoption.
adopted_all() {
  for r in "${REGIONS[@]}"; do
    n="$(curl -fsS "${URL[$r]}/v1/federation" | json '["peers"]' | python3 -c 'import ast,sys; print(sum(1 for p in ast.literal_eval(sys.stdin.read()) if p.get("adopted")))')"
    [ "$n" = "2" ] || return 1
  done
}
for _ in $(seq 1 300); do adopted_all && break; sleep 0.1; done
adopted_all || { echo "the regions did not adopt each other" >&2; exit 1; }
echo "federation up: every region adopted the other two" >&2

# The tour: a lab registered in Sichuan is known in the other regions once they adopt it.
KEYS="$(mktemp -d)"
"$VLEDGER" keygen --out "$KEYS/lab.pem" >/dev/null 2>&1
LAB="$("$VLEDGER" pubkey --key "$KEYS/lab.pem")"
echo "{\"key\":\"$LAB\",\"role\":\"agency\",\"home_region\":\"sc\",\"name\":\"Sichuan Testing Lab\"}" |
  "$VLEDGER" submit party.register --body - --key "$BASE/sc/keys/admin.pem" --url "${URL[sc]}" >/dev/null
echo "registered a testing lab in Sichuan: $LAB" >&2
LAB_PATH="$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$LAB")"
for r in cq cd; do
  for _ in $(seq 1 100); do
    curl -fsS "${URL[$r]}/v1/parties/$LAB_PATH" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "${URL[$r]}/v1/parties/$LAB_PATH" |
    python3 -c "import json,sys; p=json.load(sys.stdin); print(f'  region $r knows the lab: {p[\"name\"]}, home {p[\"log_region\"]}, as of size {p[\"as_of_size\"]} of its log')" >&2
done
for r in "${REGIONS[@]}"; do
  curl -fsS "${URL[$r]}/v1/federation" | python3 -c "
import json, sys
f = json.load(sys.stdin)
print(f'  {f[\"region\"]} (size {f[\"tree_size\"]}):', ', '.join(
    f'{p[\"region\"]} adopted at {p[\"adopted\"][\"size\"]} ({p[\"mirror\"][\"state\"]}, lag {p[\"mirror\"][\"lag_entries\"]})' for p in f['peers']))" >&2
done
rm -rf "$KEYS"

if [ "${VLEDGER_FEDERATION_EXIT:-0}" = "1" ]; then exit 0; fi
echo "the federation runs until Ctrl-C; logs in $BASE/<region>/node.log" >&2
wait
