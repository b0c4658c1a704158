//! `vledger export`: writes a node's log as an archive (docs/FORMAT.md, "Archives"), from a data
//! directory (read-only, the node may run) or from a running node over HTTP.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use vledger_domain::STATE_RECORD_ENCODING;
use vledger_node::store::Store;
use vledger_offline::archive::{ArchiveHeader, ArchiveWriter};
use vledger_offline::replay::StateDigest;
use vledger_tlog::note::{Checkpoint, NoteVerifier, SignedNote};
use vledger_wire::entry::Entry;
use vledger_wire::envelope::VerifiedEnvelope;

use vledger_client::Client;
use vledger_tlog::merkle::Hash;

/// Entries read from the store or the node at a time.
const EXPORT_PAGE: u64 = 1000;
/// State records hashed at a time for the state digest.
const STATE_PAGE: usize = 10_000;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// A node's data directory (as given to `vledger serve --data`); opened read-only.
    #[arg(long, conflicts_with = "url", required_unless_present = "url")]
    data: Option<PathBuf>,
    /// A running node's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: Option<String>,
    /// Where to write the archive ('-' for standard output).
    #[arg(long, short)]
    out: PathBuf,
    /// Which of the node's checkpoints the archive holds: every one it signed (one per batch;
    /// successive checkpoints are then checked against one another), or only the latest.
    #[arg(long, value_enum, default_value_t = CheckpointChoice::All)]
    checkpoints: CheckpointChoice,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckpointChoice {
    All,
    Latest,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let out: Box<dyn Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&args.out)
                .with_context(|| format!("cannot create {}", args.out.display()))?,
        )
    };
    let out = std::io::BufWriter::with_capacity(1 << 20, out);
    let (entries, checkpoints) = match (&args.data, &args.url) {
        (Some(data), _) => export_data(data, args.checkpoints, out)?,
        (None, Some(url)) => export_url(url, args.checkpoints, out)?,
        (None, None) => bail!("give --data DIR or --url URL"),
    };
    eprintln!("exported {entries} entries and {checkpoints} checkpoints");
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The store's log, its stored checkpoints (every one, or only the latest), and the digest of the
/// stored state.
fn export_data(data: &Path, choice: CheckpointChoice, out: impl Write) -> Result<(u64, u64)> {
    let db = data.join("db");
    if !db.exists() {
        bail!(
            "{} holds no store (expected {})",
            data.display(),
            db.display()
        );
    }
    let store = Store::open_read_only(&db)
        .with_context(|| format!("cannot open {} read-only", db.display()))?;
    let size = store.tree_size()?.unwrap_or(0);
    let latest = store
        .latest_checkpoint_size()?
        .context("the store holds no checkpoint yet")?;
    let note = store
        .checkpoint(latest)?
        .context("the latest checkpoint is missing from the store")?;
    let origin = Checkpoint::parse(&SignedNote::parse(&note)?.text)?.origin;
    let genesis = store
        .entry(0)?
        .context("the store holds no genesis entry")?;
    let envelope = VerifiedEnvelope::parse_and_verify(&Entry::decode(&genesis)?.envelope)
        .map_err(|e| anyhow::anyhow!("the genesis entry's envelope does not verify: {e}"))?;
    let verifier = NoteVerifier::new(&origin, envelope.payload.signer)?;
    let header = ArchiveHeader::new(
        &origin,
        envelope.payload.region.as_str(),
        &verifier.to_verifier_key(),
        size,
        now_ms(),
    );
    let mut writer = ArchiveWriter::new(out, &header)?;
    let mut pending_checkpoints = store.checkpoints_from(0, EXPORT_PAGE as usize)?;
    let mut checkpoints = 0u64;
    let mut write_checkpoints_up_to = |writer: &mut ArchiveWriter<_>, written: u64| -> Result<()> {
        loop {
            if pending_checkpoints.is_empty() {
                break;
            }
            let (cp_size, _) = pending_checkpoints[0];
            if cp_size > written {
                break;
            }
            let (cp_size, cp_note) = pending_checkpoints.remove(0);
            if choice == CheckpointChoice::All || cp_size == latest {
                writer.checkpoint(cp_size, &cp_note)?;
                checkpoints += 1;
            }
            if pending_checkpoints.is_empty() {
                pending_checkpoints = store.checkpoints_from(cp_size + 1, EXPORT_PAGE as usize)?;
            }
        }
        Ok(())
    };
    write_checkpoints_up_to(&mut writer, 0)?;
    let mut next = 0u64;
    while next < size {
        let end = size.min(next + EXPORT_PAGE);
        let page = store.entries(next, end)?;
        if page.is_empty() {
            bail!("entry {next} is missing from the store");
        }
        for (index, bytes) in page {
            if index != next {
                bail!("entry {next} is missing from the store");
            }
            writer.entry(index, &bytes)?;
            next += 1;
            write_checkpoints_up_to(&mut writer, next)?;
        }
    }
    // The digest is of the records as this version encodes them: a store still holding an
    // earlier encoding exports its log without one.
    let encoding = store.state_record_encoding()?;
    let digest = if encoding.as_deref() == Some(STATE_RECORD_ENCODING) {
        Some(stored_state_digest(&store)?)
    } else {
        eprintln!(
            "warning: the stored state records are in the {} encoding, not {STATE_RECORD_ENCODING}: \
             the archive carries no state digest (run `vledger rebuild --write` on the data \
             directory first to include one)",
            encoding.as_deref().unwrap_or("JSON")
        );
        None
    };
    let (_, entries) = writer.finish(digest)?;
    Ok((entries, checkpoints))
}

/// The digest of every stored state record, read in pages.
fn stored_state_digest(store: &Store) -> Result<[u8; 32]> {
    let mut digest = StateDigest::default();
    let mut start: Vec<u8> = Vec::new();
    loop {
        let page = store.scan_state_from(b"", &start, STATE_PAGE)?;
        for (key, value) in &page {
            digest.update(key, value);
        }
        match page.last() {
            Some((last, _)) if page.len() == STATE_PAGE => {
                start = last.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    Ok(digest.finish())
}

/// The node's entries up to its latest checkpoint, and its checkpoints up to that one (every
/// one, or only that one), each right after its last entry.
fn export_url(url: &str, choice: CheckpointChoice, out: impl Write) -> Result<(u64, u64)> {
    let client = Client::new(url);
    let info = client.node()?;
    let note = client.checkpoint()?;
    let checkpoint = Checkpoint::parse(&SignedNote::parse(&note)?.text)?;
    let header = ArchiveHeader::new(
        &info.origin,
        &info.region,
        &info.verifier_key,
        checkpoint.size,
        now_ms(),
    );
    let mut writer = ArchiveWriter::new(out, &header)?;
    // The history, a page at a time, read just ahead of the entries it covers.
    let mut history: std::collections::VecDeque<(u64, String)> = Default::default();
    let mut history_from = Some(0u64).filter(|_| choice == CheckpointChoice::All);
    let mut written_checkpoints = 0u64;
    let mut next = 0u64;
    while next < checkpoint.size {
        let end = checkpoint.size.min(next + EXPORT_PAGE);
        for (index, bytes) in fetch_entries(&client, next, end)? {
            writer.entry(index, &bytes)?;
            next = index + 1;
            loop {
                if history.is_empty() {
                    if let Some(from) = history_from.filter(|from| *from <= next) {
                        let page = client.checkpoints(from, EXPORT_PAGE as usize)?;
                        history_from = page.next;
                        history.extend(page.checkpoints.into_iter().map(|c| (c.size, c.note)));
                    }
                }
                match history.front() {
                    Some((size, _)) if *size < next => {
                        history.pop_front();
                    }
                    Some((size, _)) if *size == next && next < checkpoint.size => {
                        let (size, note) = history.pop_front().expect("peeked");
                        writer.checkpoint(size, &note)?;
                        written_checkpoints += 1;
                    }
                    _ => break,
                }
            }
        }
    }
    writer.checkpoint(checkpoint.size, &note)?;
    let (_, entries) = writer.finish(None)?;
    Ok((entries, written_checkpoints + 1))
}

/// The (index, canonical bytes) of the node's entries in `[start, end)`; at least one.
pub fn fetch_entries(client: &Client, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>> {
    let page = client.entries(start, end)?;
    if page.entries.is_empty() {
        bail!("{} sent no entries for [{start}, {end})", client.base_url());
    }
    page.entries
        .into_iter()
        .map(|e| {
            let bytes = B64
                .decode(&e.entry)
                .with_context(|| format!("the node sent entry {} in bad base64", e.index))?;
            Ok((e.index, bytes))
        })
        .collect()
}

/// The node's RFC 9162 consistency proof from size `from` to size `to`.
pub fn fetch_consistency(client: &Client, from: u64, to: u64) -> Result<Vec<Hash>> {
    client
        .consistency_proof(from, to)?
        .proof
        .iter()
        .map(|h| {
            B64.decode(h)
                .ok()
                .and_then(|v| v.try_into().ok())
                .context("the node sent a proof hash that is not 32 bytes of base64")
        })
        .collect()
}
