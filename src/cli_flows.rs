//! Typed helpers for the common flows — issue a voucher, place an order, fund escrow, deliver,
//! confirm, claim, review, pay — so that nobody has to write a command body by hand. Each signs
//! the command with `--key` and prints what happened in words (or the full answer with --json).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use vledger_client::{fresh_nonce, Client, CommandAccepted};

/// What every flow command takes.
#[derive(clap::Args)]
pub struct Signer {
    /// The signer's private key (PKCS#8 PEM, as `vledger keygen` writes).
    #[arg(long)]
    key: PathBuf,
    /// The node's base URL.
    #[arg(long, env = "VLEDGER_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Idempotency nonce; a fresh random one when not given. Repeating a command with the same
    /// nonce returns a receipt of the original entry instead of acting twice.
    #[arg(long)]
    nonce: Option<String>,
    /// Print the node's full JSON answer instead of a sentence.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum Flow {
    /// Issue a voucher of a program to a qualified enterprise (signed by a region admin).
    Issue {
        /// The program the voucher draws its budget from.
        #[arg(long)]
        program: String,
        /// The enterprise's public key (standard base64).
        #[arg(long)]
        holder: String,
        /// Face value in minor units (fen): 5000000 is 50,000.00 yuan.
        #[arg(long)]
        amount_minor: u64,
        /// The voucher's id; a fresh `vch-…` id when not given.
        #[arg(long)]
        voucher: Option<String>,
        /// Expiry (ms since the Unix epoch); defaults to the end of the program's window.
        #[arg(long)]
        expires_at_ms: Option<u64>,
        #[command(flatten)]
        signer: Signer,
    },
    /// Order a listed service with a voucher (signed by the enterprise). Give either --escrow
    /// (the enterprise's share goes through a licensed escrow provider), one or more
    /// --installment (paid directly to the agency), or --single-installment (paid directly, in
    /// one installment of the share the node computes).
    Order {
        #[arg(long)]
        listing: String,
        /// The region whose log holds the listing, when it is another region of the federation
        /// (a listing lives in its agency's home region); the order lives in the voucher's.
        #[arg(long)]
        listing_region: Option<String>,
        #[arg(long)]
        voucher: String,
        /// The agreed price of the whole order, in minor units.
        #[arg(long)]
        price_minor: u64,
        /// The escrow provider's public key.
        #[arg(
            long,
            conflicts_with = "installment",
            required_unless_present_any = ["installment", "single_installment"]
        )]
        escrow: Option<String>,
        /// The escrow provider's fee, in minor units.
        #[arg(long, default_value_t = 0, requires = "escrow")]
        fee_minor: u64,
        /// A direct installment `AMOUNT_MINOR@DUE_MS`; repeat for several.
        #[arg(long)]
        installment: Vec<String>,
        /// Pay directly in one installment of the whole enterprise share, due at once, which
        /// the node derives.
        #[arg(long, conflicts_with_all = ["escrow", "installment"])]
        single_installment: bool,
        /// After delivery, the order confirms itself if the enterprise does nothing for this long.
        #[arg(long, default_value_t = 7 * 24 * 3600 * 1000)]
        auto_confirm_after_ms: u64,
        /// The order's id; a fresh `ord-…` id when not given.
        #[arg(long)]
        order: Option<String>,
        #[command(flatten)]
        signer: Signer,
    },
    /// Attest that the enterprise's share arrived in escrow (signed by the escrow provider).
    FundEscrow {
        #[arg(long)]
        order: String,
        #[arg(long)]
        amount_minor: u64,
        /// The provider's own transaction reference.
        #[arg(long)]
        reference: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Record delivery with evidence (signed by the agency). Each --evidence is
    /// `contract=FILE`, `invoice=FILE` or `report=FILE` (the file's SHA-256 is recorded, never
    /// the file), or `KIND=<64 hex digits>`.
    Deliver {
        #[arg(long)]
        order: String,
        #[arg(long, required = true)]
        evidence: Vec<String>,
        #[command(flatten)]
        signer: Signer,
    },
    /// Confirm delivery (signed by the enterprise); releases the escrow.
    Confirm {
        #[arg(long)]
        order: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Claim a confirmed order's voucher share (signed by the agency).
    Claim {
        #[arg(long)]
        order: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Review a claim at one level (signed by a region admin); approves unless --reject.
    Approve {
        #[arg(long)]
        order: String,
        /// 1, or 2 for programs with two review levels.
        #[arg(long, default_value_t = 1)]
        level: u8,
        #[arg(long)]
        reject: bool,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Record the payout of an approved claim after its notice period (signed by a region admin).
    Pay {
        #[arg(long)]
        order: String,
        /// The bank or treasury reference of the payment.
        #[arg(long)]
        reference: String,
        #[command(flatten)]
        signer: Signer,
    },
}

fn fresh_id(prefix: &str) -> String {
    format!("{prefix}-{}", &fresh_nonce()[..12])
}

fn evidence_item(spec: &str) -> Result<Value> {
    let (kind, source) = spec.split_once('=').with_context(|| {
        format!("--evidence `{spec}` must be KIND=FILE or KIND=SHA256 (kind: contract, invoice, report)")
    })?;
    if !matches!(kind, "contract" | "invoice" | "report") {
        anyhow::bail!("--evidence kind `{kind}` must be contract, invoice or report");
    }
    let is_hash = source.len() == 64 && source.bytes().all(|b| b.is_ascii_hexdigit());
    let sha256 = if is_hash {
        source.to_ascii_lowercase()
    } else {
        let bytes = std::fs::read(source).with_context(|| {
            format!("--evidence {kind}: cannot read {source} (give a file or its SHA-256 in hex)")
        })?;
        hex_lower(&Sha256::digest(&bytes))
    };
    Ok(json!({ "kind": kind, "sha256": sha256 }))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn installment_item(spec: &str) -> Result<Value> {
    let (amount, due) = spec
        .split_once('@')
        .with_context(|| format!("--installment `{spec}` must be AMOUNT_MINOR@DUE_MS"))?;
    let amount: u64 = amount.parse().with_context(|| {
        format!("--installment `{spec}`: `{amount}` is not an amount in minor units")
    })?;
    let due: u64 = due
        .parse()
        .with_context(|| format!("--installment `{spec}`: `{due}` is not a time in ms"))?;
    Ok(json!({ "amount_minor": amount, "due_at_ms": due }))
}

/// The command type, its body, and a sentence saying what it does.
fn command_of(flow: &Flow) -> Result<(&'static str, Value, String)> {
    Ok(match flow {
        Flow::Issue {
            program,
            holder,
            amount_minor,
            voucher,
            expires_at_ms,
            ..
        } => {
            let voucher = voucher.clone().unwrap_or_else(|| fresh_id("vch"));
            let mut body = json!({
                "voucher_id": voucher, "program_id": program, "holder": holder,
                "face_value_minor": amount_minor,
            });
            if let Some(t) = expires_at_ms {
                body["expires_at_ms"] = json!(t);
            }
            (
                "voucher.issue",
                body,
                format!("voucher {voucher} issued from program {program}"),
            )
        }
        Flow::Order {
            listing,
            listing_region,
            voucher,
            price_minor,
            escrow,
            fee_minor,
            installment,
            single_installment,
            auto_confirm_after_ms,
            order,
            ..
        } => {
            let order = order.clone().unwrap_or_else(|| fresh_id("ord"));
            let payment = match escrow {
                Some(provider) => {
                    json!({ "mode": "escrow", "escrow_provider": provider, "fee_minor": fee_minor })
                }
                None if *single_installment => json!({ "mode": "direct" }),
                None => json!({
                    "mode": "direct",
                    "installments": installment.iter().map(|s| installment_item(s)).collect::<Result<Vec<_>>>()?,
                }),
            };
            let mut body = json!({
                "order_id": order, "listing_id": listing, "voucher_id": voucher,
                "price_minor": price_minor, "payment": payment,
                "auto_confirm_after_ms": auto_confirm_after_ms,
            });
            if let Some(region) = listing_region {
                body["listing_region"] = json!(region);
            }
            (
                "order.place",
                body,
                format!("order {order} placed for listing {listing}"),
            )
        }
        Flow::FundEscrow {
            order,
            amount_minor,
            reference,
            ..
        } => (
            "escrow.fund",
            json!({ "order_id": order, "amount_minor": amount_minor, "reference": reference }),
            format!("escrow of order {order} funded"),
        ),
        Flow::Deliver {
            order, evidence, ..
        } => (
            "order.deliver",
            json!({
                "order_id": order,
                "evidence": evidence.iter().map(|s| evidence_item(s)).collect::<Result<Vec<_>>>()?,
            }),
            format!("delivery of order {order} recorded"),
        ),
        Flow::Confirm { order, .. } => (
            "order.confirm",
            json!({ "order_id": order }),
            format!("delivery of order {order} confirmed"),
        ),
        Flow::Claim { order, .. } => (
            "claim.submit",
            json!({ "order_id": order }),
            format!("claim for order {order} submitted"),
        ),
        Flow::Approve {
            order,
            level,
            reject,
            note,
            ..
        } => {
            let decision = if *reject { "reject" } else { "approve" };
            (
                "claim.review",
                json!({ "order_id": order, "level": level, "decision": decision, "note": note }),
                format!("claim for order {order}: level {level} review recorded ({decision})"),
            )
        }
        Flow::Pay {
            order, reference, ..
        } => (
            "claim.pay",
            json!({ "order_id": order, "reference": reference }),
            format!("payout of the claim for order {order} recorded"),
        ),
    })
}

fn signer_of(flow: &Flow) -> &Signer {
    match flow {
        Flow::Issue { signer, .. }
        | Flow::Order { signer, .. }
        | Flow::FundEscrow { signer, .. }
        | Flow::Deliver { signer, .. }
        | Flow::Confirm { signer, .. }
        | Flow::Claim { signer, .. }
        | Flow::Approve { signer, .. }
        | Flow::Pay { signer, .. } => signer,
    }
}

pub fn run(flow: Flow) -> Result<()> {
    let (command_type, body, sentence) = command_of(&flow)?;
    let signer = signer_of(&flow);
    let key = crate::read_key(&signer.key)?;
    let nonce = signer.nonce.clone().unwrap_or_else(fresh_nonce);
    let accepted =
        crate::cli_submit::submit_routed(&signer.url, &key, command_type, &body, &nonce, None)?;
    print_accepted(&accepted, &sentence, signer.json)
}

/// Prints an accepted command as a sentence, or as the node's JSON.
pub fn print_accepted(accepted: &CommandAccepted, sentence: &str, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(accepted)?);
    } else if accepted.replayed {
        println!(
            "{sentence} (already recorded as entry {}; this is that entry's receipt)",
            accepted.receipt.index
        );
    } else {
        println!("{sentence}: entry {} of the log", accepted.receipt.index);
    }
    Ok(())
}

/// Settlement statements between two regions, in the debtor's log (`vledger settle ...`).
#[derive(clap::Subcommand)]
pub enum Settle {
    /// Propose the statement of what this node's region owes `--creditor` for a period (signed
    /// by the debtor region's admin): the node's open payouts of the period become its lines,
    /// each with the leaf hash of its payout entry, recomputed here from the entry's bytes.
    Propose {
        /// The region owed: the one that advanced the payouts.
        #[arg(long)]
        creditor: String,
        /// A calendar month, YYYY-MM, in the region's time zone; by default the month before.
        #[arg(long, conflicts_with_all = ["from_ms", "until_ms"])]
        month: Option<String>,
        /// The period's start, ms since the Unix epoch (with --until-ms).
        #[arg(long, requires = "until_ms")]
        from_ms: Option<u64>,
        /// The period's end, excluded.
        #[arg(long, requires = "from_ms")]
        until_ms: Option<u64>,
        /// The statement's id; a fresh `stmt-…` id when not given.
        #[arg(long)]
        statement: Option<String>,
        #[command(flatten)]
        signer: Signer,
    },
    /// Sign a statement for the signer's region (an admin of the debtor's region, or of the
    /// creditor's, on the debtor's node); it takes effect when both regions have signed.
    Sign {
        #[arg(long)]
        statement: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Record the payment of a statement signed by both regions (signed by the debtor's admin):
    /// it closes, and its amounts leave the position.
    Pay {
        #[arg(long)]
        statement: String,
        /// The bank or treasury reference of the payment.
        #[arg(long)]
        reference: String,
        #[command(flatten)]
        signer: Signer,
    },
}

/// The leaf hash of a log entry, recomputed from its bytes as served (RFC 6962:
/// SHA-256(0x00 ‖ entry)), standard base64.
fn entry_leaf_hash(client: &Client, index: u64) -> Result<String> {
    use base64::Engine;
    let entry = client
        .entry(index)
        .map_err(crate::cli_submit::explain)
        .with_context(|| format!("reading entry {index}, a payout the statement names"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&entry.entry.entry)
        .with_context(|| format!("entry {index} is not base64"))?;
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(&bytes);
    Ok(base64::engine::general_purpose::STANDARD.encode(hasher.finalize()))
}

/// The body of `settlement.propose` for the node's draft: its open payouts as lines.
fn proposal_of(client: &Client, statement: &str, draft: &Value) -> Result<Value> {
    let payouts = draft["payouts"]
        .as_array()
        .context("the node's draft has no payouts")?;
    let mut lines = Vec::with_capacity(payouts.len());
    let mut gross: u64 = 0;
    for payout in payouts {
        let index = payout["log_index"]
            .as_u64()
            .context("a payout's log_index")?;
        let amount = payout["amount_minor"]
            .as_u64()
            .context("a payout's amount")?;
        gross = gross.checked_add(amount).context("the gross overflows")?;
        lines.push(json!({
            "region": draft["debtor"], "log_index": index,
            "leaf_hash": entry_leaf_hash(client, index)?, "order_id": payout["order_id"],
            "amount_minor": amount, "direction": "debtor_to_creditor",
        }));
    }
    Ok(json!({
        "statement_id": statement, "creditor": draft["creditor"],
        "from_ms": draft["from_ms"], "until_ms": draft["until_ms"], "lines": lines,
        "gross_debtor_to_creditor_minor": gross, "gross_creditor_to_debtor_minor": 0,
        "net_minor": gross,
    }))
}

pub fn settle(command: Settle) -> Result<()> {
    let (signer, command_type, body, sentence) = match &command {
        Settle::Propose {
            creditor,
            month,
            from_ms,
            until_ms,
            statement,
            signer,
        } => {
            let client = Client::new(&signer.url);
            let mut query = vec![("creditor", creditor.clone())];
            query.extend(month.clone().map(|m| ("month", m)));
            query.extend(from_ms.map(|t| ("from_ms", t.to_string())));
            query.extend(until_ms.map(|t| ("until_ms", t.to_string())));
            let draft: Value = client
                .get_json("/v1/settlement/draft", &query)
                .map_err(crate::cli_submit::explain)?;
            let id = statement.clone().unwrap_or_else(|| fresh_id("stmt"));
            let body = proposal_of(&client, &id, &draft)?;
            let sentence = format!(
                "statement {id} proposed: {} lines, {} owed to {creditor} for [{}, {})",
                body["lines"].as_array().map_or(0, Vec::len),
                body["net_minor"],
                body["from_ms"],
                body["until_ms"],
            );
            (signer, "settlement.propose", body, sentence)
        }
        Settle::Sign { statement, signer } => (
            signer,
            "settlement.sign",
            json!({ "statement_id": statement }),
            format!("statement {statement} signed"),
        ),
        Settle::Pay {
            statement,
            reference,
            signer,
        } => {
            let client = Client::new(&signer.url);
            let record: Value = client
                .get_json(
                    &format!(
                        "/v1/settlement/statements/{}",
                        vledger_client::path_segment(statement)
                    ),
                    &[],
                )
                .map_err(crate::cli_submit::explain)?;
            let net = record["net_minor"].clone();
            let body =
                json!({ "statement_id": statement, "amount_minor": net, "reference": reference });
            let sentence = format!("statement {statement} is paid: {net} (reference {reference})");
            (signer, "settlement.record_payment", body, sentence)
        }
    };
    let key = crate::read_key(&signer.key)?;
    let nonce = signer.nonce.clone().unwrap_or_else(fresh_nonce);
    let accepted =
        crate::cli_submit::submit_routed(&signer.url, &key, command_type, &body, &nonce, None)?;
    print_accepted(&accepted, &sentence, signer.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_takes_a_hash_or_hashes_a_file() {
        let hash = "ab".repeat(32);
        let item = evidence_item(&format!("invoice={hash}")).unwrap();
        assert_eq!(item["sha256"], hash);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.pdf");
        std::fs::write(&file, b"abc").unwrap();
        let item = evidence_item(&format!("report={}", file.display())).unwrap();
        assert_eq!(
            item["sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(evidence_item("photo=abc").is_err());
        assert!(evidence_item("contract").is_err());
        assert!(evidence_item("contract=/no/such/file").is_err());
    }

    #[test]
    fn installments_are_amount_at_due_time() {
        let item = installment_item("150000@1767225600000").unwrap();
        assert_eq!(item["amount_minor"], 150000);
        assert_eq!(item["due_at_ms"], 1767225600000u64);
        assert!(installment_item("150000").is_err());
        assert!(installment_item("x@1").is_err());
    }
}
