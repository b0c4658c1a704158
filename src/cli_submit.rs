//! `vledger submit`: sign a command body with a key file, post it, print the receipt.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use vledger_client::{Client, ClientError, CommandAccepted, Federation, RouteError};
use vledger_domain::types::RegionId;
use vledger_tlog::keys::SigningKey;

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The command type, e.g. `party.register` (see `Command` in /openapi.json for every type
    /// and its body).
    command_type: String,
    /// The command body as a JSON file, or `-` for standard input.
    #[arg(long)]
    body: String,
    /// The signer's private key (PKCS#8 PEM).
    #[arg(long)]
    key: PathBuf,
    /// A node of the federation. The command goes to the node of the region whose log it
    /// belongs in, found from this node's federation map (docs/FORMAT.md §15).
    #[arg(long, env = "VLEDGER_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Send the command to this region's node instead of the one the routing rule finds.
    #[arg(long)]
    region: Option<RegionId>,
    /// The idempotency nonce; a fresh random one when not given. Resubmitting the same command
    /// with the same nonce returns a receipt of the original entry.
    #[arg(long)]
    nonce: Option<String>,
}

pub fn run(args: SubmitArgs) -> Result<()> {
    let key = crate::read_key(&args.key)?;
    let body_text = if args.body == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the body from standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.body)
            .with_context(|| format!("cannot read the body file {}", args.body))?
    };
    let body: serde_json::Value =
        serde_json::from_str(&body_text).context("the command body is not valid JSON")?;
    let nonce = args.nonce.unwrap_or_else(vledger_client::fresh_nonce);
    let accepted = submit_routed(
        &args.url,
        &key,
        &args.command_type,
        &body,
        &nonce,
        args.region.as_ref(),
    )?;
    println!("{}", serde_json::to_string(&accepted)?);
    Ok(())
}

/// Signs and submits a command to the node of the region whose log it belongs in (or of
/// `region`), found from the federation map of the node at `url`; says on standard error when
/// that is another node than `url`.
pub fn submit_routed(
    url: &str,
    key: &SigningKey,
    command_type: &str,
    body: &serde_json::Value,
    nonce: &str,
    region: Option<&RegionId>,
) -> Result<CommandAccepted> {
    let federation = Federation::discover(url).map_err(explain)?;
    let (region, accepted) = federation
        .submit_with_nonce(key, command_type, body, nonce, region)
        .map_err(|e| match e {
            RouteError::Client(e) => explain(e),
            other => anyhow::anyhow!("{other}"),
        })?;
    let node = federation
        .node(&region)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if node.base_url() != Client::new(url).base_url() {
        eprintln!(
            "sent to region `{region}`'s node {}, whose log holds it",
            node.base_url()
        );
    }
    Ok(accepted)
}

/// Turns a client error into a message that says what to fix.
pub fn explain(error: ClientError) -> anyhow::Error {
    match &error {
        ClientError::Unreachable { url, .. } => anyhow::anyhow!(
            "{error}\nis the node running? start one with `ops/run.sh`, or point --url (or VLEDGER_URL) at it (tried {url})"
        ),
        ClientError::Problem(problem) => anyhow::anyhow!(
            "the node refused the command: HTTP {}: {} ({})",
            problem.status,
            problem.detail,
            problem.problem_type
        ),
        ClientError::Unexpected { .. } => anyhow::anyhow!(error),
    }
}
