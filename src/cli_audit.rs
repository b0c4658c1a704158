//! `vledger audit`: verifies and replays an archive, then reports per region and program the
//! budget use, outstanding liability, claims paid and every fraud flag, as JSON and as one
//! self-contained HTML page (inline CSS and SVG, no external resources).

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use vledger_domain::claims::{ClaimRecord, CLAIM_PREFIX};
use vledger_domain::orders::{FraudFlagRecord, FRAUD_FLAG_PREFIX};
use vledger_domain::programs::{ProgramRecord, PROGRAM_PREFIX};
use vledger_domain::{decode_record, StateRead};
use vledger_offline::archive::ArchiveReader;
use vledger_offline::scratch::ScratchState;
use vledger_offline::verify::{verify, SourceItem, VerifyOptions};

use vledger_domain::limits::MAX_AUDIT_RECORDS;

#[derive(clap::Args)]
pub struct AuditArgs {
    /// An archive written by `vledger export`.
    archive: PathBuf,
    /// Where to write the JSON report.
    #[arg(long, default_value = "audit.json")]
    json: PathBuf,
    /// Where to write the HTML report.
    #[arg(long, default_value = "audit.html")]
    html: PathBuf,
}

/// Exit code 0: report written; 1: the archive does not verify; 2: usage or I/O error.
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
    let file = std::fs::File::open(&args.archive)
        .with_context(|| format!("cannot open {}", args.archive.display()))?;
    let (header, reader) = ArchiveReader::open(BufReader::with_capacity(1 << 20, file))?;
    let items = reader.map(|line| match line {
        Ok((line, Ok(item))) => Ok(SourceItem::Line { line, item }),
        Ok((line, Err(reason))) => Ok(SourceItem::Malformed { line, reason }),
        Err(e) => Err(e.to_string()),
    });
    let work = crate::cli_verify::work_dir(None)?;
    let state = ScratchState::create(&work.path().join("replay"))?;
    let report = verify(
        &header,
        Box::new(items),
        VerifyOptions::fresh(state),
        &mut |_| {},
    )
    .map_err(|e| anyhow::anyhow!("cannot read the archive: {e}"))?;
    let Some(replayer) = report.replayer.as_ref().filter(|_| report.passed()) else {
        eprintln!("the archive does not verify; run `vledger verify` for the failures");
        return Ok(false);
    };
    let audit = audit_json(
        &header.origin,
        &header.region,
        report.tree_size,
        replayer.state(),
    )?;
    std::fs::write(&args.json, serde_json::to_vec_pretty(&audit)?)
        .with_context(|| format!("cannot write {}", args.json.display()))?;
    std::fs::write(&args.html, audit_html(&audit))
        .with_context(|| format!("cannot write {}", args.html.display()))?;
    eprintln!("wrote {} and {}", args.json.display(), args.html.display());
    Ok(true)
}

/// The records under `prefix`, each decoded as a `T` and shown as its JSON.
fn records<T: DeserializeOwned + Serialize>(
    state: &impl StateRead,
    prefix: &[u8],
) -> Result<Vec<Value>> {
    state
        .scan_prefix_from(prefix, prefix, MAX_AUDIT_RECORDS)?
        .into_iter()
        .map(|(k, v)| Ok(serde_json::to_value(decode_record::<T>(&k, &v)?)?))
        .collect()
}

fn u(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

/// The audit figures derived from a replayed state.
pub fn audit_json(
    origin: &str,
    region: &str,
    tree_size: u64,
    state: &impl StateRead,
) -> Result<Value> {
    let claims = records::<ClaimRecord>(state, CLAIM_PREFIX)?;
    let flags = records::<FraudFlagRecord>(state, FRAUD_FLAG_PREFIX)?;
    let mut paid: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut clawed: BTreeMap<String, u64> = BTreeMap::new();
    for claim in &claims {
        let program = s(claim, "program_id");
        match claim["status"].as_str() {
            Some("paid") => {
                let e = paid.entry(program).or_default();
                e.0 += 1;
                e.1 += u(claim, &["amount_minor"]);
            }
            Some("clawed_back") => {
                *clawed.entry(program).or_default() += u(claim, &["amount_minor"])
            }
            _ => {}
        }
    }
    let mut regions: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for program in records::<ProgramRecord>(state, PROGRAM_PREFIX)? {
        let id = s(&program["terms"], "program_id");
        let b = &program["buckets"];
        let (claims_paid, paid_minor) = paid.get(&id).copied().unwrap_or_default();
        let program_flags: Vec<&Value> =
            flags.iter().filter(|f| s(f, "program_id") == id).collect();
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
                "fraud_flag_count": program_flags.len(),
            }));
    }
    let flags: Vec<Value> = flags
        .iter()
        .map(|f| {
            json!({
                "index": u(f, &["index"]),
                "rule": s(f, "rule"),
                "order_id": s(f, "order_id"),
                "program_id": s(f, "program_id"),
                "reason": s(f, "detail"),
            })
        })
        .collect();
    Ok(json!({
        "format": "vledger-audit",
        "version": 1,
        "origin": origin,
        "region": region,
        "tree_size": tree_size,
        "regions": regions.into_iter().map(|(r, p)| json!({"region": r, "programs": p})).collect::<Vec<_>>(),
        "fraud_flags": flags,
        "refused_at_entry": ["related-parties", "claims without confirmed delivery"],
    }))
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

/// The report as one self-contained HTML page.
pub fn audit_html(audit: &Value) -> String {
    let mut body = String::new();
    for region in audit["regions"].as_array().into_iter().flatten() {
        body.push_str(&format!("<h2>Region {}</h2><table><tr><th>program</th><th>budget</th><th>spent</th><th>outstanding liability</th><th>claims paid</th><th>paid amount</th><th>fraud flags</th><th>budget use</th></tr>", esc(&s(region, "region"))));
        for p in region["programs"].as_array().into_iter().flatten() {
            body.push_str(&format!(
                "<tr class=\"program\" data-program=\"{id}\"><td>{name} ({id})</td><td class=\"budget\">{}</td><td class=\"spent\">{}</td><td class=\"outstanding\">{}</td><td class=\"claims-paid\">{}</td><td class=\"claims-paid-minor\">{}</td><td class=\"flags\">{}</td><td>{}</td></tr>",
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
    }
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
        origin = esc(audit["origin"].as_str().unwrap_or("")),
        size = u(audit, &["tree_size"]),
    )
}
