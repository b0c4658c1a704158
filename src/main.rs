//! The `vledger` command line: run a node, make keys, submit signed commands.

mod cli_audit;
mod cli_export;
mod cli_flows;
mod cli_query;
mod cli_submit;
mod cli_verify;
mod cli_witness;
mod config;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use vledger_domain::GenesisBody;
pub use vledger_node::key_file::write_new_key;
use vledger_node::node::{Node, NodeConfig};
use vledger_tlog::keys::SigningKey;

/// mimalloc instead of the system allocator: the writer frees, on its own thread, buffers that
/// the HTTP and verification threads allocated, and under glibc's malloc that cross-thread
/// traffic (locks, consolidation) took about a third of the writer's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// vledger: an append-only, signed ledger for innovation vouchers shared across regions.
#[derive(Parser)]
#[command(name = "vledger", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run a region's node: the HTTP API over an embedded RocksDB store in --data.
    Serve(config::ServeSettings),
    /// Make a new ed25519 key and write it as a PKCS#8 PEM file; prints the public key.
    Keygen {
        /// Where to write the private key (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key (standard base64) of a private key file, or with --origin the C2SP
    /// verifier key of a log of that origin signed by it (what a federation map pins).
    Pubkey {
        /// A PKCS#8 PEM private key file, as `vledger keygen` writes.
        #[arg(long)]
        key: PathBuf,
        /// The log's checkpoint origin, e.g. `vledger.local/sc`: print `<origin>+<id>+<key>`.
        #[arg(long)]
        origin: Option<String>,
    },
    /// Sign a command with a key file and submit it to a node; prints the signed receipt.
    Submit(cli_submit::SubmitArgs),
    #[command(flatten)]
    Flow(cli_flows::Flow),
    /// Settlement statements between regions: propose, sign, pay.
    #[command(subcommand)]
    Settle(cli_flows::Settle),
    /// Read records, entries and proofs from a node, as JSON.
    Query(cli_query::QueryArgs),
    /// Follow the node's events as they happen (Server-Sent Events), resuming after drops.
    Tail(cli_query::TailArgs),
    /// Replay a stopped node's log and compare the state it gives with the stored state; with
    /// --write, replace the stored state with the replayed one.
    Rebuild {
        /// The node's data directory (as given to `vledger serve --data`).
        #[arg(long, env = "VLEDGER_DATA", default_value = "./data")]
        data: PathBuf,
        /// Replace the stored state with the replayed one when they differ.
        #[arg(long)]
        write: bool,
        /// Rebuild the projections by folding each entry's recorded events only, without
        /// checking signatures or deciding commands again (fast; the default replays and checks
        /// everything).
        #[arg(long)]
        from_events: bool,
    },
    /// Build a stopped node's catalog search index afresh from its store (a running node
    /// keeps it up by itself, and builds it at start when it is missing).
    Reindex {
        /// The node's data directory (as given to `vledger serve --data`).
        #[arg(long, env = "VLEDGER_DATA", default_value = "./data")]
        data: PathBuf,
    },
    /// Write a node's log (entries, checkpoints, key) as a self-contained archive.
    Export(cli_export::ExportArgs),
    /// Verify an archive or a running node offline: signatures, chain, checkpoints, replay.
    /// Exit code 0: verified; 1: verification failed; 2: usage or I/O error.
    Verify(cli_verify::VerifyArgs),
    /// Check an equivocation evidence document on its own (exit 0 when it proves a fork).
    VerifyEvidence {
        /// The evidence file (JSON) written by a witness or by `vledger verify --against`.
        file: PathBuf,
    },
    /// Run a C2SP tlog-witness that cosigns consistent checkpoints of the logs it follows.
    Witness(cli_witness::WitnessArgs),
    /// Replay an archive and write the regulator's audit report (JSON and HTML).
    Audit(cli_audit::AuditArgs),
}

fn main() -> Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        // What clap made holds the flags and defaults only; the settings are layered from its
        // matches, the environment and the config file.
        Commands::Serve(_) => {
            let (_, flags) = matches.subcommand().expect("a subcommand was parsed");
            let settings = config::ServeSettings::load(flags, |name| std::env::var_os(name))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            serve(settings)
        }
        Commands::Keygen { out } => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            write_new_key(&out, &key)?;
            println!("{}", key.public_key().to_base64());
            eprintln!("wrote the private key to {}", out.display());
            Ok(())
        }
        Commands::Pubkey { key, origin } => {
            let key = read_key(&key)?.public_key();
            match origin {
                None => println!("{}", key.to_base64()),
                Some(origin) => {
                    let verifier = vledger_tlog::note::NoteVerifier::new(&origin, key)
                        .map_err(|e| anyhow::anyhow!("origin `{origin}`: {e}"))?;
                    println!("{}", verifier.to_verifier_key());
                }
            }
            Ok(())
        }
        Commands::Submit(args) => cli_submit::run(args),
        Commands::Flow(flow) => cli_flows::run(flow),
        Commands::Settle(command) => cli_flows::settle(command),
        Commands::Query(args) => cli_query::run(args),
        Commands::Tail(args) => cli_query::tail(args),
        Commands::Rebuild {
            data,
            write,
            from_events,
        } => rebuild(&data, write, from_events),
        Commands::Reindex { data } => reindex(&data),
        Commands::Export(args) => cli_export::run(args),
        Commands::Verify(args) => std::process::exit(cli_verify::run(args)),
        Commands::VerifyEvidence { file } => std::process::exit(cli_verify::verify_evidence(&file)),
        Commands::Witness(args) => cli_witness::run(args),
        Commands::Audit(args) => std::process::exit(cli_audit::run(args)),
    }
}

/// Reads a PKCS#8 PEM private key file.
pub fn read_key(path: &Path) -> Result<SigningKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a PKCS#8 PEM ed25519 private key: {e}",
            path.display()
        )
    })
}

fn load_or_create_key(path: &Path) -> Result<(SigningKey, bool)> {
    if path.exists() {
        return Ok((read_key(path)?, false));
    }
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    write_new_key(path, &key)?;
    Ok((key, true))
}

/// Where a node keeps its catalog search index, beside its store.
fn catalog_index_dir(data: &Path) -> PathBuf {
    data.join("catalog-index")
}

fn reindex(data: &Path) -> Result<()> {
    let db = data.join("db");
    if !db.exists() {
        anyhow::bail!(
            "{} holds no store (expected {})",
            data.display(),
            db.display()
        );
    }
    let store = vledger_node::store::Store::open(&db)
        .with_context(|| format!("cannot open {} (is the node still running?)", db.display()))?;
    let started = std::time::Instant::now();
    let report = vledger_search::index::rebuild_in(&catalog_index_dir(data), &store)
        .context("cannot build the catalog's search index")?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "indexed {} active listings as of {} entries{} in {seconds:.2} s ({:.0} listings/s)",
        report.listings,
        report.freshness.log_size,
        report
            .freshness
            .regions
            .iter()
            .map(|(region, size)| format!(", {region} at {size}"))
            .collect::<String>(),
        report.listings as f64 / seconds.max(1e-9)
    );
    Ok(())
}

fn rebuild(data: &Path, write: bool, from_events: bool) -> Result<()> {
    let db = data.join("db");
    if !db.exists() {
        anyhow::bail!(
            "{} holds no store (expected {})",
            data.display(),
            db.display()
        );
    }
    let store = vledger_node::store::Store::open(&db)
        .with_context(|| format!("cannot open {} (is the node still running?)", db.display()))?;
    let mode = if from_events {
        vledger_offline::rebuild::RebuildMode::Events
    } else {
        vledger_offline::rebuild::RebuildMode::Replay
    };
    let started = std::time::Instant::now();
    // The rebuilt state is kept on disk beside the store while it is compared, then removed.
    let scratch = tempfile::Builder::new()
        .prefix("rebuild-")
        .tempdir_in(data)
        .with_context(|| format!("cannot make a directory in {}", data.display()))?;
    let report =
        vledger_offline::rebuild::rebuild(&store, mode, write, &scratch.path().join("state"))
            .context("the log does not replay")?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} {} entries into {} state records in {seconds:.2} s ({:.0} entries/s)",
        if from_events {
            "folded the events of"
        } else {
            "replayed"
        },
        report.entries,
        report.records,
        report.entries as f64 / seconds.max(1e-9)
    );
    if report.differing_keys.is_empty() {
        println!("the stored state is identical to the replayed state");
        return Ok(());
    }
    for key in report.differing_keys.iter().take(20) {
        println!("differs: {}", String::from_utf8_lossy(key));
    }
    if write {
        println!(
            "replaced the stored state with the replayed state ({} records differed)",
            report.differing_keys.len()
        );
        // The search index was made from the state replaced: the node builds it again at start.
        let index = catalog_index_dir(data);
        if index.exists() {
            std::fs::remove_dir_all(&index)
                .with_context(|| format!("cannot remove {}", index.display()))?;
            println!("removed the catalog's search index; the node builds it again at start");
        }
        Ok(())
    } else {
        anyhow::bail!(
            "{} state records differ from the log; run again with --write to repair",
            report.differing_keys.len()
        )
    }
}

fn serve(args: config::ServeSettings) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=info".into());
    match args.log_format {
        config::LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        config::LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(filter)
            .init(),
    }
    let region = args.region.clone();
    let origin = args
        .origin
        .clone()
        .unwrap_or_else(|| format!("vledger.local/{region}"));
    let keys_dir = args.data.join("keys");
    let (node_key, created) = load_or_create_key(&keys_dir.join("node.pem"))?;
    if created {
        eprintln!(
            "created the node key {}",
            keys_dir.join("node.pem").display()
        );
    }
    let admin_key = match (&args.admin_key, args.demo) {
        (Some(key), _) => Some(*key),
        (None, true) => {
            let path = keys_dir.join("admin.pem");
            let (key, created) = load_or_create_key(&path)?;
            if created {
                eprintln!("created the demo admin key {}", path.display());
            }
            Some(key.public_key())
        }
        (None, false) => None,
    };
    let genesis = admin_key.map(|admin_key| GenesisBody {
        region_name: args.region_name.clone(),
        admin_key,
        admin_name: format!("{} admin", args.region_name),
        time_zone: "Asia/Shanghai".into(),
    });
    let node = Node::open(NodeConfig {
        data_dir: args.data.join("db"),
        region: region.clone(),
        origin,
        node_key,
        max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
        genesis,
    })
    .map_err(|e| match e {
        vledger_node::node::OpenError::NoGenesis => anyhow::anyhow!(
            "{} holds no log yet: start with --admin-key <base64 public key> to found region `{region}`, or --demo",
            args.data.display()
        ),
        other => anyhow::anyhow!(other),
    })?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = vledger_api::listen(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, region = %region, tree_size = node.tree_size(), "vledger node listening");
        print_welcome(&args.data, &addr.to_string(), &node, args.demo);
        let witnesses: Vec<_> = args.witnesses.iter().map(|w| w.0.clone()).collect();
        let peers: Vec<_> = args.peers.iter().map(|p| p.0.clone()).collect();
        let limits = args.connection_limits();
        let services = vledger_api::NodeServices {
            cosigned: if witnesses.is_empty() {
                Arc::default()
            } else {
                vledger_api::witnessing::start(Arc::clone(&node), witnesses)
            },
            federation: vledger_api::federation::Federation::start(
                Arc::clone(&node),
                peers,
                args.data.join("evidence"),
            ),
            catalog: Some(
                vledger_search::CatalogIndex::start(&node, Some(catalog_index_dir(&args.data)))
                    .context("cannot open the catalog's search index")?,
            ),
        };
        vledger_api::serve_app(listener, Arc::clone(&node), services, limits, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}

fn print_welcome(data: &Path, addr: &str, node: &Node, demo: bool) {
    eprintln!(
        "vledger node of region `{}` on http://{addr}",
        node.region()
    );
    eprintln!("  log origin   {}", node.origin());
    eprintln!("  verifier key {}", node.verifier_key());
    eprintln!("  data         {}", data.display());
    if demo {
        let admin = data.join("keys").join("admin.pem");
        eprintln!("  admin key    {}", admin.display());
        eprintln!("submit a first command, e.g. register an agency:");
        eprintln!("  vledger keygen --out agency.pem");
        eprintln!(
            "  echo '{{\"key\":\"'$(vledger pubkey --key agency.pem)'\",\"role\":\"agency\",\"home_region\":\"{}\",\"name\":\"Demo Lab\"}}' \\",
            node.region()
        );
        eprintln!(
            "    | vledger submit party.register --body - --key {} --url http://{addr}",
            admin.display()
        );
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing accepted commands");
}
