//! `vledger audit`: verifies and replays an archive, or the archives of a federation's regions
//! together (as `vledger verify` does), then reports per region and program the budget use,
//! outstanding liability, claims paid, every fraud flag, the cross-region orders and payouts,
//! the settlement positions and statements, and whether the positions net to zero across the
//! federation, as JSON and as one self-contained HTML page (inline CSS and SVG, no external
//! resources).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use vledger_domain::claims::{ClaimRecord, ClaimStatus, CLAIM_PREFIX};
use vledger_domain::orders::{
    FraudFlagRecord, OrderRecord, OrderStatus, FRAUD_FLAG_PREFIX, ORDER_PREFIX,
};
use vledger_domain::programs::{ProgramRecord, PROGRAM_PREFIX};
use vledger_domain::queries::settlement_positions;
use vledger_domain::settlement::{load_payout, StatementRecord, StatementStatus, STATEMENT_PREFIX};
use vledger_domain::{decode_record, Event, StateRead};
use vledger_offline::archive::{ArchiveHeader, ArchiveLine};
use vledger_offline::scratch::ScratchState;
use vledger_offline::verify::{verify, SourceItem, VerifyOptions};
use vledger_wire::entry::Entry;

use crate::cli_verify::{check_one_source_per_region, open_source, peer_archives, work_dir};
use vledger_domain::limits::MAX_AUDIT_RECORDS;

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Archives written by `vledger export`: one, or one per region of a federation, verified
    /// together as `vledger verify` verifies them (each with the others as its peers).
    #[arg(required = true, value_name = "ARCHIVE")]
    archives: Vec<String>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "audit.json")]
    json: PathBuf,
    /// Where to write the HTML report.
    #[arg(long, default_value = "audit.html")]
    html: PathBuf,
}

/// Exit code 0: report written; 1: an archive does not verify; 2: usage or I/O error.
pub fn run(args: AuditArgs) -> i32 {
    match run_inner(&args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

fn run_inner(args: &AuditArgs) -> Result<bool> {
    if args.archives.len() > 1 {
        check_one_source_per_region(&args.archives)?;
    }
    let work = work_dir(None)?;
    let mut logs = Vec::with_capacity(args.archives.len());
    for (subject, archive) in args.archives.iter().enumerate() {
        let dir = work.path().join(format!("archive-{subject}"));
        std::fs::create_dir(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
        let peers = peer_archives(&args.archives, subject, &dir)?;
        let (header, lines) = open_source(archive)?;
        let state = ScratchState::create(&dir.join("replay"))?;
        let options = VerifyOptions {
            peers,
            ..VerifyOptions::fresh(state)
        };
        let report = verify(&header, lines, options, &mut |_| {})
            .map_err(|e| anyhow::anyhow!("cannot read {archive}: {e}"))?;
        let Some(replayer) = report.replayer.as_ref().filter(|_| report.passed()) else {
            eprintln!(
                "the archive {archive} (region {}) does not verify:",
                header.region
            );
            for failure in &report.failures {
                eprintln!("  {failure}");
            }
            eprintln!("run `vledger verify` for the whole report");
            return Ok(false);
        };
        let entries = statement_entries(archive)?;
        logs.push(audit_log(
            &header,
            report.tree_size,
            replayer.state(),
            &entries,
        )?);
        drop(report);
        std::fs::remove_dir_all(&dir).ok();
    }
    let audit = audit_report(logs);
    std::fs::write(&args.json, serde_json::to_vec_pretty(&audit)?)
        .with_context(|| format!("cannot write {}", args.json.display()))?;
    std::fs::write(&args.html, audit_html(&audit))
        .with_context(|| format!("cannot write {}", args.html.display()))?;
    eprintln!("wrote {} and {}", args.json.display(), args.html.display());
    Ok(true)
}

/// The entries of one statement's steps in its log.
#[derive(Default)]
struct StatementEntries {
    proposed: Option<u64>,
    /// Per signing region.
    signed: BTreeMap<String, u64>,
    paid: Option<u64>,
}

/// The entries that proposed, signed and paid each statement of a (verified) archive: the
/// statement records keep who signed and when, not in which entry.
fn statement_entries(archive: &str) -> Result<BTreeMap<String, StatementEntries>> {
    let (_, lines) = open_source(archive)?;
    let mut found: BTreeMap<String, StatementEntries> = BTreeMap::new();
    for item in lines {
        let item = item.map_err(|e| anyhow::anyhow!("cannot read {archive}: {e}"))?;
        let SourceItem::Line {
            item: ArchiveLine::Entry { index, entry },
            ..
        } = item
        else {
            continue;
        };
        let bytes = B64
            .decode(entry.as_bytes())
            .with_context(|| format!("entry {index} of {archive}"))?;
        let entry = Entry::decode(&bytes).with_context(|| format!("entry {index} of {archive}"))?;
        if !entry.events.windows(12).any(|w| w == b"\"settlement.") {
            continue;
        }
        let events: Vec<Event> = serde_json::from_slice(&entry.events)
            .with_context(|| format!("the events of entry {index} of {archive}"))?;
        for event in events {
            let (id, step) = match event {
                Event::StatementProposed { statement_id, .. } => (statement_id, None),
                Event::StatementSigned {
                    statement_id,
                    region,
                    ..
                } => (statement_id, Some(Some(region.to_string()))),
                Event::StatementPaid { statement_id, .. } => (statement_id, Some(None)),
                _ => continue,
            };
            if found.len() >= MAX_AUDIT_RECORDS && !found.contains_key(id.as_str()) {
                anyhow::bail!("{archive} holds more than {MAX_AUDIT_RECORDS} statements");
            }
            let steps = found.entry(id.as_str().to_string()).or_default();
            match step {
                None => steps.proposed = Some(index),
                Some(Some(region)) => {
                    steps.signed.insert(region, index);
                }
                Some(None) => steps.paid = Some(index),
            }
        }
    }
    Ok(found)
}

/// The records under `prefix`, each decoded as a `T`.
fn typed_records<T: DeserializeOwned>(state: &impl StateRead, prefix: &[u8]) -> Result<Vec<T>> {
    state
        .scan_prefix_from(prefix, prefix, MAX_AUDIT_RECORDS)?
        .into_iter()
        .map(|(k, v)| Ok(decode_record::<T>(&k, &v)?))
        .collect()
}

/// The records under `prefix`, each decoded as a `T` and shown as its JSON.
fn records<T: DeserializeOwned + Serialize>(
    state: &impl StateRead,
    prefix: &[u8],
) -> Result<Vec<Value>> {
    typed_records::<T>(state, prefix)?
        .iter()
        .map(|r| Ok(serde_json::to_value(r)?))
        .collect()
}

fn u(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

/// Who paid a cross-region claim: the funding (issuing) region itself, or the agency's region,
/// which advanced it and is owed it.
const PAID_BY_FUNDING_REGION: &str = "funding_region";
const PAID_BY_AGENCY_REGION: &str = "agency_region";

/// Count and sum of a group of records.
#[derive(Default, Clone, Copy)]
struct Tally {
    count: u64,
    minor: u64,
}

impl Tally {
    fn add(&mut self, minor: u64) {
        self.count += 1;
        self.minor += minor;
    }
}

/// A settlement position as one region's log records it.
struct PositionSeen {
    debtor: String,
    creditor: String,
    amount_minor: u64,
    /// The region of the log that records it.
    recorded_by: String,
    /// The payouts of the pair that log holds and no paid statement has netted yet.
    unsettled_payouts_minor: u64,
}

/// What one region's log, verified and replayed, gives the report.
struct LogAudit {
    origin: String,
    region: String,
    node_key: String,
    tree_size: u64,
    /// The region's programs, grouped by region as the programs name it.
    regions: BTreeMap<String, Vec<Value>>,
    fraud_flags: Vec<Value>,
    positions: Vec<PositionSeen>,
    statements: Vec<Value>,
    /// Per (funding region, agency region, who paid): the cross-region claims paid.
    payouts: BTreeMap<(String, String, &'static str), Tally>,
}

/// The audit figures of one verified log, from its replayed state and the entries of its
/// statements' steps.
fn audit_log(
    header: &ArchiveHeader,
    tree_size: u64,
    state: &impl StateRead,
    entries: &BTreeMap<String, StatementEntries>,
) -> Result<LogAudit> {
    let typed_claims = typed_records::<ClaimRecord>(state, CLAIM_PREFIX)?;
    let flags = records::<FraudFlagRecord>(state, FRAUD_FLAG_PREFIX)?;
    let statements = typed_records::<StatementRecord>(state, STATEMENT_PREFIX)?;
    let paid_statements: Vec<&str> = statements
        .iter()
        .filter(|s| s.status == StatementStatus::Paid)
        .map(|s| s.statement_id.as_str())
        .collect();

    let mut paid: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut clawed: BTreeMap<String, u64> = BTreeMap::new();
    // Per program and agency region, and per (program, agency region, who paid).
    let mut cross_orders: BTreeMap<(String, String), (u64, u64, u64)> = BTreeMap::new();
    let mut cross_payouts: BTreeMap<(String, String, &'static str), Tally> = BTreeMap::new();
    let mut payouts: BTreeMap<(String, String, &'static str), Tally> = BTreeMap::new();
    let mut unsettled: BTreeMap<(String, String), u64> = BTreeMap::new();
    for claim in &typed_claims {
        let program = claim.program_id.as_str().to_string();
        match claim.status {
            ClaimStatus::Paid => {
                let e = paid.entry(program.clone()).or_default();
                e.0 += 1;
                e.1 += claim.amount_minor;
            }
            ClaimStatus::ClawedBack => {
                *clawed.entry(program.clone()).or_default() += claim.amount_minor
            }
            _ => {}
        }
        if claim.paid_at_ms.is_none() || claim.agency_region == claim.funding_region {
            continue;
        }
        let (funding, agency) = (
            claim.funding_region.to_string(),
            claim.agency_region.to_string(),
        );
        let paid_by = match load_payout(state, &claim.order_id)? {
            Some(payout) => {
                let netted = payout
                    .statement_id
                    .as_ref()
                    .is_some_and(|id| paid_statements.contains(&id.as_str()));
                if !netted {
                    *unsettled
                        .entry((payout.debtor.to_string(), payout.creditor.to_string()))
                        .or_default() += payout.amount_minor;
                }
                PAID_BY_AGENCY_REGION
            }
            None => PAID_BY_FUNDING_REGION,
        };
        cross_payouts
            .entry((program, agency.clone(), paid_by))
            .or_default()
            .add(claim.amount_minor);
        payouts
            .entry((funding, agency, paid_by))
            .or_default()
            .add(claim.amount_minor);
    }
    for order in typed_records::<OrderRecord>(state, ORDER_PREFIX)? {
        if order.agency_region == order.funding_region || order.status == OrderStatus::Cancelled {
            continue;
        }
        let e = cross_orders
            .entry((
                order.program_id.as_str().to_string(),
                order.agency_region.to_string(),
            ))
            .or_default();
        e.0 += 1;
        e.1 += order.price_minor;
        e.2 += order.voucher_share_minor;
    }

    let mut regions: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    regions.entry(header.region.clone()).or_default();
    for program in records::<ProgramRecord>(state, PROGRAM_PREFIX)? {
        let id = s(&program["terms"], "program_id");
        let b = &program["buckets"];
        let (claims_paid, paid_minor) = paid.get(&id).copied().unwrap_or_default();
        let program_flags = flags.iter().filter(|f| s(f, "program_id") == id).count();
        let orders: Vec<Value> = cross_orders
            .range((id.clone(), String::new())..)
            .take_while(|((p, _), _)| *p == id)
            .map(|((_, agency), (count, price, share))| {
                json!({
                    "agency_region": agency,
                    "orders": count,
                    "price_minor": price,
                    "voucher_share_minor": share,
                })
            })
            .collect();
        let program_payouts: Vec<Value> = cross_payouts
            .iter()
            .filter(|((p, _, _), _)| *p == id)
            .map(|((_, agency, paid_by), tally)| {
                json!({
                    "agency_region": agency,
                    "paid_by": paid_by,
                    "claims": tally.count,
                    "amount_minor": tally.minor,
                })
            })
            .collect();
        regions
            .entry(s(&program, "region"))
            .or_default()
            .push(json!({
                "program_id": id,
                "name": s(&program["terms"], "name"),
                "kind": s(&program["terms"], "kind"),
                "currency": s(&program["terms"], "currency"),
                "budget_minor": u(&program, &["terms", "budget_minor"]),
                "unissued_minor": u(b, &["unissued_minor"]),
                "outstanding_liability_minor": u(b, &["outstanding_minor"]),
                "spent_minor": u(b, &["spent_minor"]),
                "expired_minor": u(b, &["expired_minor"]),
                "revoked_minor": u(b, &["revoked_minor"]),
                "claims_paid": claims_paid,
                "claims_paid_minor": paid_minor,
                "clawback_receivable_minor": clawed.get(&id).copied().unwrap_or(0),
                "fraud_flag_count": program_flags,
                "cross_region_orders": orders,
                "cross_region_payouts": program_payouts,
            }));
    }
    let fraud_flags: Vec<Value> = flags
        .iter()
        .map(|f| {
            json!({
                "index": u(f, &["index"]),
                "rule": s(f, "rule"),
                "order_id": s(f, "order_id"),
                "program_id": s(f, "program_id"),
                "reason": s(f, "detail"),
                "region": header.region,
            })
        })
        .collect();
    let positions = settlement_positions(state, MAX_AUDIT_RECORDS)?
        .into_iter()
        .map(|p| {
            let pair = (p.debtor.to_string(), p.creditor.to_string());
            PositionSeen {
                unsettled_payouts_minor: unsettled.get(&pair).copied().unwrap_or(0),
                debtor: pair.0,
                creditor: pair.1,
                amount_minor: p.amount_minor,
                recorded_by: header.region.clone(),
            }
        })
        .collect();
    let statements = statements
        .iter()
        .map(|s| statement_json(s, entries.get(s.statement_id.as_str())))
        .collect();
    Ok(LogAudit {
        origin: header.origin.clone(),
        region: header.region.clone(),
        node_key: header.node_key.clone(),
        tree_size,
        regions,
        fraud_flags,
        positions,
        statements,
        payouts,
    })
}

/// A statement as the report shows it: its figures, each region's signature with the entry
/// that recorded it, and its payment.
fn statement_json(statement: &StatementRecord, entries: Option<&StatementEntries>) -> Value {
    let signatures: Vec<Value> = statement
        .signatures
        .iter()
        .map(|sig| {
            json!({
                "region": sig.region,
                "signer": sig.signer.to_base64(),
                "at_ms": sig.at_ms,
                "index": entries.and_then(|e| e.signed.get(sig.region.as_str())),
            })
        })
        .collect();
    let payment = statement.payment.as_ref().map(|p| {
        json!({
            "amount_minor": p.amount_minor,
            "reference": p.reference,
            "by": p.by.to_base64(),
            "paid_at_ms": p.paid_at_ms,
            "index": entries.and_then(|e| e.paid),
        })
    });
    json!({
        "statement_id": statement.statement_id.as_str(),
        "debtor": statement.debtor,
        "creditor": statement.creditor,
        "from_ms": statement.from_ms,
        "until_ms": statement.until_ms,
        "gross_debtor_to_creditor_minor": statement.gross_debtor_to_creditor_minor,
        "gross_creditor_to_debtor_minor": statement.gross_creditor_to_debtor_minor,
        "net_minor": statement.net_minor,
        "line_count": statement.lines.len(),
        "status": statement.status,
        "proposed_by": statement.proposed_by.to_base64(),
        "proposed_at_index": entries.and_then(|e| e.proposed),
        "signatures": signatures,
        "payment": payment,
    })
}

fn position_json(p: &PositionSeen) -> Value {
    json!({
        "debtor": p.debtor,
        "creditor": p.creditor,
        "amount_minor": p.amount_minor,
        "recorded_by": p.recorded_by,
        "unsettled_payouts_minor": p.unsettled_payouts_minor,
        "reconciled": p.amount_minor == p.unsettled_payouts_minor && p.debtor == p.recorded_by,
    })
}

/// Across the logs: what each region is owed and owes, whether that nets to zero, and the
/// cross-region payouts per pair of regions.
fn federation_json(logs: &[LogAudit]) -> Value {
    let mut balances: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for log in logs {
        balances.entry(&log.region).or_default();
    }
    let positions: Vec<&PositionSeen> = logs.iter().flat_map(|l| &l.positions).collect();
    for p in &positions {
        balances.entry(&p.creditor).or_default().0 += p.amount_minor;
        balances.entry(&p.debtor).or_default().1 += p.amount_minor;
    }
    let net_minor: i128 = balances
        .values()
        .map(|(owed, owing)| i128::from(*owed) - i128::from(*owing))
        .sum();
    let reconciled = positions
        .iter()
        .all(|p| p.amount_minor == p.unsettled_payouts_minor && p.debtor == p.recorded_by);
    let mut payouts: BTreeMap<(String, String, &'static str), Tally> = BTreeMap::new();
    for log in logs {
        for (key, tally) in &log.payouts {
            let e = payouts.entry(key.clone()).or_default();
            e.count += tally.count;
            e.minor += tally.minor;
        }
    }
    json!({
        "regions": logs.iter().map(|l| &l.region).collect::<Vec<_>>(),
        "balances": balances.iter().map(|(region, (owed, owing))| json!({
            "region": region,
            "owed_to_minor": owed,
            "owing_minor": owing,
            "net_minor": i128::from(*owed) - i128::from(*owing),
        })).collect::<Vec<_>>(),
        "open_positions_minor": positions.iter().map(|p| p.amount_minor).sum::<u64>(),
        "positions_net_minor": net_minor,
        "positions_net_to_zero": net_minor == 0,
        "positions_reconciled": reconciled,
        "cross_region_payouts": payouts.iter().map(|((funding, agency, paid_by), t)| json!({
            "funding_region": funding,
            "agency_region": agency,
            "paid_by": paid_by,
            "claims": t.count,
            "amount_minor": t.minor,
        })).collect::<Vec<_>>(),
    })
}

/// The report of one log, or of a federation's logs audited together.
fn audit_report(logs: Vec<LogAudit>) -> Value {
    let federation = federation_json(&logs);
    let mut regions: BTreeMap<String, Value> = BTreeMap::new();
    let mut fraud_flags = Vec::new();
    for log in &logs {
        for (region, programs) in &log.regions {
            let entry = regions.entry(region.clone()).or_insert_with(
                || json!({"region": region, "programs": [], "positions": [], "statements": []}),
            );
            entry["programs"]
                .as_array_mut()
                .expect("an array")
                .extend(programs.iter().cloned());
            if *region == log.region {
                entry["positions"] = log.positions.iter().map(position_json).collect();
                entry["statements"] = json!(log.statements);
            }
        }
        fraud_flags.extend(log.fraud_flags.iter().cloned());
    }
    let logs_json: Vec<Value> = logs
        .iter()
        .map(|l| {
            json!({
                "origin": l.origin,
                "region": l.region,
                "node_key": l.node_key,
                "tree_size": l.tree_size,
            })
        })
        .collect();
    let mut report = json!({
        "format": "vledger-audit",
        "version": 1,
    });
    if let [log] = logs.as_slice() {
        report["origin"] = json!(log.origin);
        report["region"] = json!(log.region);
        report["tree_size"] = json!(log.tree_size);
    }
    report["logs"] = json!(logs_json);
    report["regions"] = regions.into_values().collect();
    report["fraud_flags"] = json!(fraud_flags);
    report["refused_at_entry"] = json!(["related-parties", "claims without confirmed delivery"]);
    report["federation"] = federation;
    report
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One horizontal stacked bar of a program's budget buckets, as inline SVG.
fn budget_bar(p: &Value) -> String {
    let budget = u(p, &["budget_minor"]).max(1) as f64;
    let parts = [
        ("spent_minor", "#2e7d32", "spent"),
        ("outstanding_liability_minor", "#f9a825", "outstanding"),
        ("expired_minor", "#9e9e9e", "expired"),
        ("revoked_minor", "#c62828", "revoked"),
        ("unissued_minor", "#cfd8dc", "unissued"),
    ];
    let mut x = 0.0;
    let mut rects = String::new();
    for (key, color, label) in parts {
        let w = u(p, &[key]) as f64 / budget * 600.0;
        rects.push_str(&format!(
            "<rect class=\"bucket\" data-bucket=\"{label}\" data-value=\"{}\" x=\"{x:.2}\" y=\"0\" width=\"{w:.2}\" height=\"24\" fill=\"{color}\"><title>{label}: {}</title></rect>",
            u(p, &[key]),
            u(p, &[key])
        ));
        x += w;
    }
    format!("<svg class=\"budget-chart\" data-program=\"{}\" width=\"600\" height=\"24\" viewBox=\"0 0 600 24\" xmlns=\"http://www.w3.org/2000/svg\">{rects}</svg>", esc(&s(p, "program_id")))
}

/// A horizontal bar chart, as inline SVG: one labelled bar per `(label, attributes, value)`,
/// scaled to the largest value.
fn bar_chart(class: &str, bars: &[(String, String, u64)]) -> String {
    const WIDTH: f64 = 400.0;
    const LABEL: f64 = 220.0;
    const ROW: usize = 22;
    let max = bars.iter().map(|b| b.2).max().unwrap_or(0).max(1) as f64;
    let mut rows = String::new();
    for (i, (label, attributes, value)) in bars.iter().enumerate() {
        let y = i * ROW;
        let w = *value as f64 / max * WIDTH;
        rows.push_str(&format!(
            "<text x=\"0\" y=\"{ty}\" font-size=\"12\">{label}</text><rect class=\"bar\" {attributes} data-value=\"{value}\" x=\"{LABEL}\" y=\"{y}\" width=\"{w:.2}\" height=\"16\" fill=\"#1565c0\"><title>{label}: {value}</title></rect>",
            ty = y + 12,
            label = esc(label),
        ));
    }
    let height = (bars.len() * ROW).max(ROW);
    format!("<svg class=\"{class}\" width=\"{total}\" height=\"{height}\" viewBox=\"0 0 {total} {height}\" xmlns=\"http://www.w3.org/2000/svg\">{rows}</svg>", total = LABEL + WIDTH)
}

/// A region's cross-region orders and payouts (per program) and its settlement positions and
/// statements, as HTML tables.
fn region_federation_html(region: &Value) -> String {
    let mut html = String::from("<h3>Cross-region orders</h3><table class=\"cross-region-orders\"><tr><th>program</th><th>agency region</th><th>orders</th><th>price</th><th>voucher share</th></tr>");
    for p in region["programs"].as_array().into_iter().flatten() {
        for o in p["cross_region_orders"].as_array().into_iter().flatten() {
            html.push_str(&format!(
                "<tr class=\"cross-order\" data-program=\"{}\" data-agency-region=\"{}\"><td>{}</td><td>{}</td><td class=\"orders\">{}</td><td class=\"price\">{}</td><td class=\"voucher-share\">{}</td></tr>",
                esc(&s(p, "program_id")), esc(&s(o, "agency_region")),
                esc(&s(p, "program_id")), esc(&s(o, "agency_region")),
                u(o, &["orders"]), u(o, &["price_minor"]), u(o, &["voucher_share_minor"]),
            ));
        }
    }
    html.push_str("</table><h3>Cross-region payouts</h3><table class=\"cross-region-payouts\"><tr><th>program</th><th>agency region</th><th>paid by</th><th>claims</th><th>amount</th></tr>");
    for p in region["programs"].as_array().into_iter().flatten() {
        for o in p["cross_region_payouts"].as_array().into_iter().flatten() {
            html.push_str(&format!(
                "<tr class=\"cross-payout\" data-program=\"{}\" data-agency-region=\"{}\" data-paid-by=\"{}\"><td>{}</td><td>{}</td><td class=\"paid-by\">{}</td><td class=\"claims\">{}</td><td class=\"amount\">{}</td></tr>",
                esc(&s(p, "program_id")), esc(&s(o, "agency_region")), esc(&s(o, "paid_by")),
                esc(&s(p, "program_id")), esc(&s(o, "agency_region")), esc(&paid_by_words(&s(o, "paid_by"))),
                u(o, &["claims"]), u(o, &["amount_minor"]),
            ));
        }
    }
    html.push_str("</table><h3>Settlement positions in this log</h3><table class=\"positions\"><tr><th>debtor</th><th>creditor</th><th>amount</th><th>payouts not yet settled</th><th>reconciled</th></tr>");
    for p in region["positions"].as_array().into_iter().flatten() {
        html.push_str(&format!(
            "<tr class=\"position\" data-debtor=\"{d}\" data-creditor=\"{c}\" data-recorded-by=\"{r}\"><td>{d}</td><td>{c}</td><td class=\"amount\">{}</td><td class=\"unsettled\">{}</td><td class=\"reconciled\">{}</td></tr>",
            u(p, &["amount_minor"]), u(p, &["unsettled_payouts_minor"]),
            yes_no(p["reconciled"].as_bool()),
            d = esc(&s(p, "debtor")), c = esc(&s(p, "creditor")), r = esc(&s(p, "recorded_by")),
        ));
    }
    html.push_str("</table><h3>Settlement statements</h3><table class=\"statements\"><tr><th>statement</th><th>debtor</th><th>creditor</th><th>period (ms)</th><th>gross owed to creditor</th><th>gross owed to debtor</th><th>net</th><th>lines</th><th>status</th><th>signatures</th><th>payment</th></tr>");
    for st in region["statements"].as_array().into_iter().flatten() {
        let mut signatures = String::new();
        for sig in st["signatures"].as_array().into_iter().flatten() {
            signatures.push_str(&format!(
                "<div class=\"signature\" data-region=\"{r}\" data-signer=\"{k}\" data-index=\"{i}\">{r}: {k} (entry {i})</div>",
                r = esc(&s(sig, "region")), k = esc(&s(sig, "signer")), i = index_text(&sig["index"]),
            ));
        }
        let payment = match st["payment"].as_object() {
            Some(_) => {
                let p = &st["payment"];
                format!(
                    "<div class=\"payment\" data-amount=\"{a}\" data-reference=\"{r}\" data-index=\"{i}\">{a} ({r}, entry {i})</div>",
                    a = u(p, &["amount_minor"]), r = esc(&s(p, "reference")), i = index_text(&p["index"]),
                )
            }
            None => "unpaid".to_string(),
        };
        html.push_str(&format!(
            "<tr class=\"statement\" data-statement=\"{id}\"><td>{id}</td><td class=\"debtor\">{}</td><td class=\"creditor\">{}</td><td class=\"period\">{} to {}</td><td class=\"gross-owed\">{}</td><td class=\"gross-owing\">{}</td><td class=\"net\">{}</td><td class=\"lines\">{}</td><td class=\"status\">{}</td><td class=\"signatures\">{signatures}</td><td class=\"payment\">{payment}</td></tr>",
            esc(&s(st, "debtor")), esc(&s(st, "creditor")),
            u(st, &["from_ms"]), u(st, &["until_ms"]),
            u(st, &["gross_debtor_to_creditor_minor"]), u(st, &["gross_creditor_to_debtor_minor"]),
            u(st, &["net_minor"]), u(st, &["line_count"]), esc(&s(st, "status")),
            id = esc(&s(st, "statement_id")),
        ));
    }
    html.push_str("</table>");
    html
}

fn paid_by_words(paid_by: &str) -> String {
    match paid_by {
        PAID_BY_AGENCY_REGION => "advanced by the agency's region".into(),
        PAID_BY_FUNDING_REGION => "paid by the issuing region".into(),
        other => other.into(),
    }
}

fn yes_no(value: Option<bool>) -> &'static str {
    if value == Some(true) {
        "yes"
    } else {
        "no"
    }
}

fn index_text(index: &Value) -> String {
    index
        .as_u64()
        .map_or("unknown".to_string(), |i| i.to_string())
}

/// The federation's balances, their check and its charts, as HTML.
fn federation_html(federation: &Value) -> String {
    let mut html = String::from("<h2>Federation</h2><table id=\"balances\"><tr><th>region</th><th>owed to it</th><th>it owes</th><th>net</th></tr>");
    let mut balance_bars = Vec::new();
    for b in federation["balances"].as_array().into_iter().flatten() {
        let region = s(b, "region");
        html.push_str(&format!(
            "<tr class=\"balance\" data-region=\"{r}\"><td>{r}</td><td class=\"owed-to\">{}</td><td class=\"owing\">{}</td><td class=\"net\">{}</td></tr>",
            u(b, &["owed_to_minor"]), u(b, &["owing_minor"]),
            b["net_minor"].as_i64().unwrap_or(0),
            r = esc(&region),
        ));
        for (kind, key) in [("owed-to", "owed_to_minor"), ("owing", "owing_minor")] {
            balance_bars.push((
                format!("{region}: {}", kind.replace('-', " ")),
                format!("data-region=\"{}\" data-kind=\"{kind}\"", esc(&region)),
                u(b, &[key]),
            ));
        }
    }
    html.push_str(&format!(
        "</table><p id=\"net-check\" data-net=\"{net}\" data-reconciled=\"{rec}\">Positions across the federation net to <span class=\"net\">{net}</span> (zero: <span class=\"zero\">{zero}</span>); every position equals the payouts its log holds unsettled: <span class=\"reconciled\">{rec}</span>. Open positions in all: <span class=\"open\">{open}</span>.</p>",
        net = federation["positions_net_minor"].as_i64().unwrap_or(0),
        zero = yes_no(federation["positions_net_to_zero"].as_bool()),
        rec = yes_no(federation["positions_reconciled"].as_bool()),
        open = u(federation, &["open_positions_minor"]),
    ));
    html.push_str("<h3>Owed and owing per region</h3>");
    html.push_str(&bar_chart("balance-chart", &balance_bars));
    let payout_bars: Vec<(String, String, u64)> = federation["cross_region_payouts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let (funding, agency, paid_by) = (
                s(p, "funding_region"),
                s(p, "agency_region"),
                s(p, "paid_by"),
            );
            (
                format!("{funding} to {agency}: {}", paid_by_words(&paid_by)),
                format!(
                    "data-funding-region=\"{}\" data-agency-region=\"{}\" data-paid-by=\"{}\"",
                    esc(&funding),
                    esc(&agency),
                    esc(&paid_by)
                ),
                u(p, &["amount_minor"]),
            )
        })
        .collect();
    html.push_str("<h3>Cross-region payouts per pair of regions</h3>");
    html.push_str(&bar_chart("payout-chart", &payout_bars));
    html
}

/// The report as one self-contained HTML page.
pub fn audit_html(audit: &Value) -> String {
    let logs: Vec<&Value> = audit["logs"].as_array().into_iter().flatten().collect();
    let mut body = String::from("<ul id=\"logs\">");
    for log in &logs {
        body.push_str(&format!(
            "<li class=\"log\" data-region=\"{r}\" data-tree-size=\"{n}\">region {r}: {o}, {n} entries, node key {k}</li>",
            r = esc(&s(log, "region")),
            o = esc(&s(log, "origin")),
            n = u(log, &["tree_size"]),
            k = esc(&s(log, "node_key")),
        ));
    }
    body.push_str("</ul>");
    for region in audit["regions"].as_array().into_iter().flatten() {
        body.push_str(&format!("<h2>Region {}</h2><table><tr><th>program</th><th>budget</th><th>spent</th><th>outstanding liability</th><th>claims paid</th><th>paid amount</th><th>fraud flags</th><th>budget use</th></tr>", esc(&s(region, "region"))));
        for p in region["programs"].as_array().into_iter().flatten() {
            body.push_str(&format!(
                "<tr class=\"program\" data-program=\"{id}\"><td class=\"name\">{name} ({id})</td><td class=\"budget\">{}</td><td class=\"spent\">{}</td><td class=\"outstanding\">{}</td><td class=\"claims-paid\">{}</td><td class=\"claims-paid-minor\">{}</td><td class=\"flags\">{}</td><td>{}</td></tr>",
                u(p, &["budget_minor"]),
                u(p, &["spent_minor"]),
                u(p, &["outstanding_liability_minor"]),
                u(p, &["claims_paid"]),
                u(p, &["claims_paid_minor"]),
                u(p, &["fraud_flag_count"]),
                budget_bar(p),
                id = esc(&s(p, "program_id")),
                name = esc(&s(p, "name")),
            ));
        }
        body.push_str("</table>");
        body.push_str(&region_federation_html(region));
    }
    body.push_str(&federation_html(&audit["federation"]));
    body.push_str("<h2>Fraud flags</h2><table id=\"fraud-flags\"><tr><th>entry</th><th>rule</th><th>order</th><th>program</th><th>reason</th></tr>");
    for f in audit["fraud_flags"].as_array().into_iter().flatten() {
        body.push_str(&format!(
            "<tr class=\"flag\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            u(f, &["index"]),
            esc(&s(f, "rule")),
            esc(&s(f, "order_id")),
            esc(&s(f, "program_id")),
            esc(&s(f, "reason"))
        ));
    }
    body.push_str("</table>");
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vledger audit: {origin}</title><style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin-bottom:1.5em}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style></head><body><h1>Audit of {origin}</h1><p>Replayed and verified <span id=\"tree-size\">{size}</span> entries. Related parties and claims without confirmed delivery are refused at entry and never recorded.</p>{body}<p id=\"summary\"></p><script>document.getElementById('summary').textContent='programs: '+document.querySelectorAll('tr.program').length+', fraud flags: '+document.querySelectorAll('tr.flag').length;</script></body></html>",
        origin = esc(&logs.iter().map(|l| s(l, "origin")).collect::<Vec<_>>().join(", ")),
        size = logs.iter().map(|l| u(l, &["tree_size"])).sum::<u64>(),
    )
}
