#!/usr/bin/env bash
# Starts a three-region federation on loopback: Chongqing (cq), Sichuan (sc) and Chengdu (cd),
# each its own node with its own key, data directory and log, each mirroring and adopting the
# other two. Prints `region <id> <url>` for each region as soon as it answers, waits until the
# regions have adopted each other, then runs a short tour: a lab registered in Sichuan becomes
# known in Chongqing and Chengdu, and each node shows its view of the federation; then a
# Chongqing voucher buys a Chengdu lab's test (half from the voucher, half through escrow),
# Chengdu advances the payout, a statement signed by both regions' admins is paid ("statement
# <id> is paid"), and it prints where every yuan is. The nodes run until Ctrl-C (or, with
# VLEDGER_FEDERATION_EXIT=1, stop after the tour).
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

# Then a voucher crosses the border: a Chongqing enterprise buys, with a Chongqing voucher, an
# EMC test a Chengdu lab lists in Chengdu's log, half the price from the voucher and half through
# a Chengdu escrow provider. Chengdu advances the payout and recovers it through a statement
# both regions' admins sign. Every command is sent to the signer's own node; the CLI routes it
# to the node of the log its record lives in (the order's: Chongqing's).
submit() { # TYPE KEY URL, the body on standard input; stops the tour with the node's answer
  local body answer
  body="$(cat)"
  answer="$(echo "$body" | "$VLEDGER" submit "$1" --body - --key "$2" --url "$3" 2>&1)" ||
    { echo "$1 was refused: $answer" >&2; exit 1; }
}
CQ_ADMIN="$BASE/cq/keys/admin.pem" CD_ADMIN="$BASE/cd/keys/admin.pem"
for who in cd_lab cd_escrow cq_enterprise; do "$VLEDGER" keygen --out "$KEYS/$who.pem" >/dev/null 2>&1; done
pub() { "$VLEDGER" pubkey --key "$KEYS/$1.pem"; }
NOW_MS="$(python3 -c 'import time; print(int(time.time() * 1000))')"
DAY_MS=86400000
TAG="$NOW_MS" # ids fresh for every run over the same data directories
echo "{\"key\":\"$(pub cd_lab)\",\"role\":\"agency\",\"home_region\":\"cd\",\"name\":\"成都检测中心\"}" | submit party.register "$CD_ADMIN" "${URL[cd]}"
echo "{\"agency\":\"$(pub cd_lab)\",\"expires_at_ms\":$((NOW_MS + 300 * DAY_MS))}" | submit agency.accredit "$CD_ADMIN" "${URL[cd]}"
echo "{\"key\":\"$(pub cd_escrow)\",\"role\":\"escrow\",\"home_region\":\"cd\",\"name\":\"成都托管\"}" | submit party.register "$CD_ADMIN" "${URL[cd]}"
echo "{\"listing_id\":\"emc-$TAG\",\"pool\":\"instruments_equipment\",\"category\":\"testing\",\"title\":\"EMC 测试\",\"description\":\"EMC testing\",\"price_minor\":200000,\"currency\":\"CNY\"}" |
  submit catalog.list "$KEYS/cd_lab.pem" "${URL[cd]}"
echo "{\"key\":\"$(pub cq_enterprise)\",\"role\":\"enterprise\",\"home_region\":\"cq\",\"name\":\"重庆企业\"}" | submit party.register "$CQ_ADMIN" "${URL[cq]}"
echo "{\"program_id\":\"p-$TAG\",\"name\":\"创新券 (advanced by the agency's region)\",\"kind\":\"resource_sharing\",\"currency\":\"CNY\",
  \"budget_minor\":10000000,\"subsidy_ratio_bps\":5000,\"caps\":{\"per_voucher_minor\":400000,\"per_order_minor\":200000,
  \"per_enterprise_year_minor\":800000,\"per_group_year_minor\":1000000},\"eligible_categories\":[\"testing\"],
  \"valid_from_ms\":$((NOW_MS - DAY_MS)),\"valid_until_ms\":$((NOW_MS + 365 * DAY_MS)),\"claim_deadline_ms\":$((NOW_MS + 400 * DAY_MS)),
  \"spend_regions\":[\"cq\",\"sc\",\"cd\"],\"cross_region_payer\":\"agency_region\",\"use_mode\":\"multi\",\"review_levels\":1,\"notice_period_ms\":0}" |
  submit program.create "$CQ_ADMIN" "${URL[cq]}"
echo "{\"program_id\":\"p-$TAG\",\"enterprise\":\"$(pub cq_enterprise)\",\"expires_at_ms\":$((NOW_MS + 300 * DAY_MS))}" | submit enterprise.qualify "$CQ_ADMIN" "${URL[cq]}"
echo "{\"voucher_id\":\"v-$TAG\",\"program_id\":\"p-$TAG\",\"holder\":\"$(pub cq_enterprise)\",\"face_value_minor\":400000}" | submit voucher.issue "$CQ_ADMIN" "${URL[cq]}"
echo "issued voucher v-$TAG (¥4,000.00 under Chongqing's program p-$TAG) to a Chongqing enterprise" >&2
for _ in $(seq 1 100); do
  curl -fsS "${URL[cq]}/v1/catalog/listings/emc-$TAG?region=cd" >/dev/null 2>&1 && break
  sleep 0.1
done
"$VLEDGER" order --order "o-$TAG" --listing "emc-$TAG" --listing-region cd --voucher "v-$TAG" --price-minor 200000 \
  --escrow "$(pub cd_escrow)" --key "$KEYS/cq_enterprise.pem" --url "${URL[cq]}" >/dev/null
echo "{\"order_id\":\"o-$TAG\",\"amount_minor\":100000,\"reference\":\"ESCROW-$TAG\"}" | submit escrow.fund "$KEYS/cd_escrow.pem" "${URL[cd]}"
echo "{\"order_id\":\"o-$TAG\",\"evidence\":[{\"kind\":\"report\",\"sha256\":\"$(printf 'EMC report %s' "$TAG" | sha256sum | cut -c1-64)\"}]}" |
  submit order.deliver "$KEYS/cd_lab.pem" "${URL[cd]}"
echo "{\"order_id\":\"o-$TAG\"}" | submit order.confirm "$KEYS/cq_enterprise.pem" "${URL[cq]}"
echo "{\"order_id\":\"o-$TAG\"}" | submit claim.submit "$KEYS/cd_lab.pem" "${URL[cd]}"
echo "{\"order_id\":\"o-$TAG\",\"level\":1,\"decision\":\"approve\"}" | submit claim.review "$CQ_ADMIN" "${URL[cq]}"
echo "{\"order_id\":\"o-$TAG\",\"reference\":\"CD-ADVANCE-$TAG\"}" | submit claim.pay "$CD_ADMIN" "${URL[cd]}"
echo "order o-$TAG (¥2,000.00): ¥1,000.00 from the voucher, ¥1,000.00 through Chengdu's escrow; delivered, confirmed, claimed, approved; Chengdu advanced the payout" >&2

# The statement of the period that ends now: proposed and signed by Chongqing's admin, signed by
# Chengdu's on Chengdu's node (routed to Chongqing's, the debtor's log), paid.
sleep 1
UNTIL_MS="$(python3 -c 'import time; print(int(time.time() * 1000))')"
"$VLEDGER" settle propose --creditor cd --from-ms "$((NOW_MS - DAY_MS))" --until-ms "$UNTIL_MS" --statement "st-$TAG" \
  --key "$CQ_ADMIN" --url "${URL[cq]}" >/dev/null
"$VLEDGER" settle sign --statement "st-$TAG" --key "$CQ_ADMIN" --url "${URL[cq]}" >/dev/null
for _ in $(seq 1 100); do # Chengdu's admin signs what Chengdu's node has adopted of Chongqing
  curl -fsS "${URL[cd]}/v1/settlement/statements/st-$TAG?region=cq" >/dev/null 2>&1 && break
  sleep 0.1
done
"$VLEDGER" settle sign --statement "st-$TAG" --key "$CD_ADMIN" --url "${URL[cd]}" >/dev/null 2>&1
"$VLEDGER" settle pay --statement "st-$TAG" --reference "PBOC-$TAG" --key "$CQ_ADMIN" --url "${URL[cq]}" >/dev/null
STATUS="$(curl -fsS "${URL[cq]}/v1/settlement/statements/st-$TAG" | json '["status"]')"
[ "$STATUS" = "paid" ] || { echo "statement st-$TAG is $STATUS, not paid" >&2; exit 1; }
echo "statement st-$TAG is paid: Chongqing owed Chengdu ¥1,000.00, signed by both regions' admins" >&2

# Where every yuan is, from Chongqing's log.
yuan() { python3 -c 'import sys; v=int(sys.argv[1]); print(f"¥{v // 100:,}.{v % 100:02d}")' "$1"; }
curl -fsS "${URL[cq]}/v1/programs/p-$TAG" | python3 -c '
import json, sys
b = json.load(sys.stdin)["buckets"]
y = lambda v: f"¥{v // 100:,}.{v % 100:02d}"
print("  program p-%s: %s" % (sys.argv[1], ", ".join(f"{k[:-6]} {y(v)}" for k, v in b.items())))' "$TAG" >&2
echo "  voucher v-$TAG: balance $(yuan "$(curl -fsS "${URL[cq]}/v1/vouchers/v-$TAG" | json '["balance_minor"]')")" >&2
curl -fsS "${URL[cq]}/v1/orders/o-$TAG" | python3 -c '
import json, sys
o = json.load(sys.stdin); e = o["escrow"]
y = lambda v: f"¥{v // 100:,}.{v % 100:02d}"
funded, released, refunded = y(e["funded_minor"]), y(e["released_minor"]), y(e["refunded_minor"])
share = y(o["voucher_share_minor"])
print(f"  order o-{sys.argv[1]}: escrow funded {funded}, released to the lab {released}, refunded {refunded}; voucher share paid to the lab by Chengdu {share}")' "$TAG" >&2
for _ in $(seq 1 100); do # until Chengdu's node adopted the payment
  [ "$(curl -fsS "${URL[cd]}/v1/settlement/positions")" = "$(curl -fsS "${URL[cq]}/v1/settlement/positions")" ] && break
  sleep 0.1
done
curl -fsS "${URL[cd]}/v1/settlement/positions" | python3 -c '
import json, sys
y = lambda v: f"¥{v // 100:,}.{v % 100:02d}"
for p in json.load(sys.stdin):
    debtor, creditor, amount = p["debtor"], p["creditor"], y(p["amount_minor"])
    print(f"  position: {debtor} owes {creditor} {amount} (read on Chengdu'"'"'s node, as on every node)")' >&2
rm -rf "$KEYS"

if [ "${VLEDGER_FEDERATION_EXIT:-0}" = "1" ]; then exit 0; fi
echo "the federation runs until Ctrl-C; logs in $BASE/<region>/node.log" >&2
wait
