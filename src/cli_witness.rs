//! `vledger witness`: runs a C2SP tlog-witness for the logs given with --log.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use vledger_offline::witness::Witness;
use vledger_tlog::cosignature::Cosigner;
use vledger_tlog::note::NoteVerifier;

#[derive(clap::Args)]
pub struct WitnessArgs {
    /// The witness's state directory: its latest view of each log, and evidence of forks.
    #[arg(long, default_value = "./witness")]
    data: PathBuf,
    /// The witness's private key (PKCS#8 PEM, as `vledger keygen` writes); created if missing.
    #[arg(long)]
    key: PathBuf,
    /// The witness's name (its cosignature key name), e.g. `witness.example/w1`.
    #[arg(long)]
    name: String,
    /// A log to witness, as its C2SP verifier key (`GET /v1/node` answers it); repeatable.
    #[arg(long = "log", required_unless_present = "print_key")]
    logs: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// Print the witness's verifier key (for `vledger serve --witness`) and exit.
    #[arg(long)]
    print_key: bool,
}

pub fn run(args: WitnessArgs) -> Result<()> {
    let key = if args.key.exists() {
        crate::read_key(&args.key)?
    } else {
        let key = vledger_tlog::keys::SigningKey::generate(&mut rand::rngs::OsRng);
        crate::write_new_key(&args.key, &key)?;
        key
    };
    let cosigner = Cosigner::new(&args.name, key).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let vkey = cosigner.verifier().to_verifier_key();
    if args.print_key {
        println!("{vkey}");
        return Ok(());
    }
    let logs = args
        .logs
        .iter()
        .map(|l| NoteVerifier::parse(l).map_err(|e| anyhow::anyhow!("--log {l}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let witness = Witness::open(&args.data, cosigner, logs)
        .with_context(|| format!("cannot open the witness state in {}", args.data.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = vledger_api::listen(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!("witness {} on http://{}", args.name, listener.local_addr()?);
        eprintln!("  verifier key {vkey}");
        let app = vledger_api::witness_service::witness_router(Arc::new(witness));
        axum::serve(vledger_api::without_delay(listener), app)
            .with_graceful_shutdown(crate::shutdown_signal())
            .await?;
        Ok(())
    })
}
