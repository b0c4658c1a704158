//! `vledger submit`: sign a command body with a key file, post it, print the receipt.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use vledger_ledger::envelope::{seal, CommandPayload, COMMAND_FORMAT_VERSION};
use vledger_ledger::types::RegionId;

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The command type, e.g. `party.register`.
    command_type: String,
    /// The command body as a JSON file, or `-` for standard input.
    #[arg(long)]
    body: String,
    /// The signer's private key (PKCS#8 PEM).
    #[arg(long)]
    key: PathBuf,
    /// The node's base URL.
    #[arg(long, env = "VLEDGER_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The region the command is meant for; asked of the node when not given.
    #[arg(long)]
    region: Option<String>,
    /// The idempotency nonce; a fresh random one when not given. Resubmitting the same command
    /// with the same nonce returns the original receipt.
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
    let client = reqwest::blocking::Client::new();
    let base = args.url.trim_end_matches('/');
    let region = match args.region {
        Some(r) => r,
        None => {
            let info: serde_json::Value = client
                .get(format!("{base}/v1/node"))
                .send()
                .with_context(|| format!("cannot reach the node at {base}"))?
                .json()
                .context("the node's /v1/node answer is not JSON")?;
            info["region"]
                .as_str()
                .context("the node did not say its region")?
                .to_string()
        }
    };
    let region = RegionId::try_from(region).map_err(|e| anyhow::anyhow!("--region: {e}"))?;
    let nonce = args.nonce.unwrap_or_else(|| {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    let payload = CommandPayload {
        v: u64::from(COMMAND_FORMAT_VERSION),
        command_type: args.command_type,
        region,
        signer: key.public_key(),
        nonce,
        body,
    };
    let envelope = seal(&payload, &key);
    let response = client
        .post(format!("{base}/v1/commands"))
        .header("content-type", "application/json")
        .body(envelope)
        .send()
        .with_context(|| format!("cannot reach the node at {base}"))?;
    let status = response.status();
    let text = response.text().unwrap_or_default();
    if !status.is_success() {
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|p| {
                Some(format!(
                    "{} ({})",
                    p["detail"].as_str()?,
                    p["type"].as_str()?
                ))
            })
            .unwrap_or(text);
        anyhow::bail!("the node refused the command: HTTP {status}: {detail}");
    }
    println!("{text}");
    Ok(())
}
