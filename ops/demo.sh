#!/usr/bin/env bash
# A guided tour of one voucher's whole life, against the node that `ops/run.sh` started:
# a science bureau creates a program and issues a voucher, an enterprise finds a testing
# service in the shared catalog and orders it, pays its own share through escrow, the lab
# delivers, the bureau reviews the lab's claim and pays it, and anyone can check the result.
#
#   ops/demo.sh                 # node at http://127.0.0.1:8080, data in ./data
#   VLEDGER_URL=http://host:port VLEDGER_DATA=/path/to/data ops/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export VLEDGER_URL="${VLEDGER_URL:-http://127.0.0.1:8080}"
DATA="${VLEDGER_DATA:-./data}"
ADMIN_KEY="$DATA/keys/admin.pem"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/vledger-target}"
VLEDGER="${VLEDGER_BIN:-}"
if [ -z "$VLEDGER" ]; then
  for candidate in "$TARGET/release/vledger" "$TARGET/debug/vledger"; do
    if [ -x "$candidate" ]; then VLEDGER="$candidate"; break; fi
  done
fi
[ -n "$VLEDGER" ] || { echo "no vledger binary: run ops/run.sh first (it builds one)" >&2; exit 1; }
[ -f "$ADMIN_KEY" ] || { echo "no demo admin key at $ADMIN_KEY: start the node with ops/run.sh (it creates one)" >&2; exit 1; }
"$VLEDGER" query node >/dev/null 2>&1 || {
  echo "no node answers at $VLEDGER_URL: start one with ops/run.sh in another terminal" >&2; exit 1; }

if [ -t 1 ]; then step() { printf '\n\033[1m%s\033[0m\n' "$*"; }; else step() { printf '\n%s\n' "$*"; }; fi
say() { printf '  %s\n' "$*"; }
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
yuan() { python3 -c 'import sys; print(f"{int(sys.argv[1])/100:,.2f} yuan")' "$1"; }
now_ms() { python3 -c 'import time; print(int(time.time()*1000))'; }
submit() { # submit TYPE KEY JSON
  echo "$3" | "$VLEDGER" submit "$1" --body - --key "$2" >/dev/null
}

RUN="$(date +%s)"
KEYS="$(mktemp -d)"
trap 'rm -rf "$KEYS"' EXIT
REGION="$("$VLEDGER" query node | json_field '["region"]')"
DAY=$((24 * 3600 * 1000))
NOW="$(now_ms)"

step "1. The region's science bureau (region '$REGION') registers who takes part"
for who in lab firm escrow; do "$VLEDGER" keygen --out "$KEYS/$who.pem" >/dev/null 2>&1; done
LAB="$("$VLEDGER" pubkey --key "$KEYS/lab.pem")"
FIRM="$("$VLEDGER" pubkey --key "$KEYS/firm.pem")"
ESCROW="$("$VLEDGER" pubkey --key "$KEYS/escrow.pem")"
submit party.register "$ADMIN_KEY" "{\"key\":\"$LAB\",\"role\":\"agency\",\"home_region\":\"$REGION\",\"name\":\"Western Testing Lab $RUN\"}"
say "registered a testing lab (a service agency)"
submit party.register "$ADMIN_KEY" "{\"key\":\"$FIRM\",\"role\":\"enterprise\",\"home_region\":\"$REGION\",\"name\":\"Bashu Robotics $RUN\"}"
say "registered a small enterprise, Bashu Robotics"
submit party.register "$ADMIN_KEY" "{\"key\":\"$ESCROW\",\"role\":\"escrow\",\"home_region\":\"$REGION\",\"name\":\"Licensed Escrow $RUN\"}"
say "registered a licensed escrow provider that holds the enterprise's own money"
submit agency.accredit "$ADMIN_KEY" "{\"agency\":\"$LAB\",\"expires_at_ms\":$((NOW + 365 * DAY))}"
say "accredited the lab to serve voucher orders for one year"

step "2. The bureau opens a voucher program and gives the enterprise a voucher"
PROGRAM="demo-$RUN"
submit program.create "$ADMIN_KEY" "{\"program_id\":\"$PROGRAM\",\"name\":\"Resource sharing vouchers $RUN\",\"kind\":\"resource_sharing\",\"currency\":\"CNY\",\"budget_minor\":100000000,\"subsidy_ratio_bps\":5000,\"caps\":{\"per_voucher_minor\":5000000,\"per_order_minor\":2000000,\"per_enterprise_year_minor\":5000000,\"per_group_year_minor\":10000000},\"eligible_categories\":[\"testing\"],\"valid_from_ms\":$((NOW - DAY)),\"valid_until_ms\":$((NOW + 180 * DAY)),\"claim_deadline_ms\":$((NOW + 240 * DAY)),\"spend_regions\":[\"$REGION\"],\"cross_region_payer\":\"agency_region\",\"use_mode\":\"multi\",\"review_levels\":1,\"notice_period_ms\":2000}"
say "program $PROGRAM: a budget of $(yuan 100000000); vouchers pay 50% of a testing service, at most $(yuan 2000000) per order"
submit enterprise.qualify "$ADMIN_KEY" "{\"program_id\":\"$PROGRAM\",\"enterprise\":\"$FIRM\",\"expires_at_ms\":$((NOW + 180 * DAY))}"
say "Bashu Robotics qualifies for the program"
VOUCHER="vch-$RUN"
"$VLEDGER" issue --program "$PROGRAM" --holder "$FIRM" --amount-minor 5000000 --voucher "$VOUCHER" --key "$ADMIN_KEY" >/dev/null
say "issued voucher $VOUCHER worth $(yuan 5000000) to Bashu Robotics"

step "3. The lab lists a service in the shared catalog; the enterprise finds it"
LISTING="lst-$RUN"
submit catalog.list "$KEYS/lab.pem" "{\"listing_id\":\"$LISTING\",\"pool\":\"instruments_equipment\",\"category\":\"testing\",\"title\":\"EMC testing of a robot controller $RUN\",\"description\":\"Electromagnetic compatibility test with a report\",\"price_minor\":3000000,\"currency\":\"CNY\",\"unit\":\"per device\",\"tags\":[\"EMC\",\"robotics\"]}"
say "the lab listed 'EMC testing of a robot controller' at $(yuan 3000000)"
FOUND="$("$VLEDGER" query listings --text "robot controller $RUN" | json_field '["hits"][0]["listing"]["listing_id"]')"
say "searching the catalog for 'robot controller' finds listing $FOUND"

step "4. The enterprise orders it, paying half with the voucher and half through escrow"
ORDER="ord-$RUN"
"$VLEDGER" order --listing "$LISTING" --voucher "$VOUCHER" --price-minor 3000000 --escrow "$ESCROW" --fee-minor 3000 --order "$ORDER" --key "$KEYS/firm.pem" >/dev/null
SHARE="$("$VLEDGER" query order "$ORDER" | json_field '["voucher_share_minor"]')"
OWN="$("$VLEDGER" query order "$ORDER" | json_field '["enterprise_share_minor"]')"
say "order $ORDER placed: the voucher covers $(yuan "$SHARE"), the enterprise pays $(yuan "$OWN") itself"
"$VLEDGER" fund-escrow --order "$ORDER" --amount-minor "$OWN" --reference "bank-$RUN" --key "$KEYS/escrow.pem" >/dev/null
say "the escrow provider confirms it holds the enterprise's $(yuan "$OWN")"

step "5. The lab delivers; the enterprise confirms; the escrow pays the lab"
printf 'EMC test report for order %s\n' "$ORDER" > "$KEYS/report.txt"
printf 'Contract for order %s\n' "$ORDER" > "$KEYS/contract.txt"
"$VLEDGER" deliver --order "$ORDER" --evidence "contract=$KEYS/contract.txt" --evidence "report=$KEYS/report.txt" --key "$KEYS/lab.pem" >/dev/null
say "the lab recorded delivery; only the fingerprints (SHA-256) of the contract and report go into the ledger"
"$VLEDGER" confirm --order "$ORDER" --key "$KEYS/firm.pem" >/dev/null
ESCROW_STATUS="$("$VLEDGER" query order "$ORDER" | json_field '["escrow"]["status"]')"
say "Bashu Robotics confirmed delivery; the escrow is now: $ESCROW_STATUS"

step "6. The lab claims the voucher's share; the bureau reviews, publishes and pays"
"$VLEDGER" claim --order "$ORDER" --key "$KEYS/lab.pem" >/dev/null
say "the lab claimed $(yuan "$SHARE") from the program"
"$VLEDGER" approve --order "$ORDER" --level 1 --note "documents complete" --key "$ADMIN_KEY" >/dev/null
say "the bureau approved the claim; it is published for a notice period before payment"
sleep 3
"$VLEDGER" pay --order "$ORDER" --reference "treasury-$RUN" --key "$ADMIN_KEY" >/dev/null
say "after the notice period the bureau paid the lab: claim status $("$VLEDGER" query claim "$ORDER" | json_field '["status"]')"

step "7. Where the program's money is now"
"$VLEDGER" query program "$PROGRAM" > "$KEYS/program.json"
for bucket in unissued outstanding spent; do
  say "$(printf '%-12s' "$bucket") $(yuan "$(json_field "[\"buckets\"][\"${bucket}_minor\"]" < "$KEYS/program.json")")"
done

step "8. Anyone can check the record"
SIZE="$("$VLEDGER" query node | json_field '["tree_size"]')"
LAST=$((SIZE - 1))
ROOT="$("$VLEDGER" query entry "$LAST" | json_field '["inclusion"]["root_hash"]')"
say "the log holds $SIZE signed entries; the latest checkpoint commits to them all with root $ROOT"
say "every entry comes with a proof that it is in that tree: try '$VLEDGER query entry $LAST'"
say "follow what happens live with '$VLEDGER tail'"
printf '\nDemo complete.\n'
