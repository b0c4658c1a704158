//! `vledger verify`: checks an archive (or a running node) offline and reports each failure by
//! entry index and reason; given the archives of several regions of a federation, verifies each
//! with the others as its peers: every adoption checked against the adopted region's archive,
//! every cross-region decision decided again on that region's records as adopted. Exit code 0:
//! verified; 1: verification failed; 2: usage or I/O error; 3: with `--accept-uncovered-tail`,
//! nothing failed but entries after the last checkpoint are unverified.
//! Also `vledger verify-evidence`, which checks an equivocation evidence document on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use vledger_offline::archive::{ArchiveHeader, ArchiveLine, ArchiveReader};
use vledger_offline::peer_views::PeerArchive;
use vledger_offline::scratch::ScratchState;
use vledger_offline::verify::{
    verify, Source, SourceItem, Start, VerifierState, VerifyOptions, VerifyReport,
};
use vledger_tlog::evidence::{implied_old_root, Evidence};
use vledger_tlog::merkle::verify_consistency;
use vledger_tlog::note::{Checkpoint, NoteVerifier, SignedNote};

use vledger_client::Client;

use crate::cli_export::{fetch_consistency, fetch_entries};

/// Entries fetched per page when verifying a URL.
const URL_PAGE: u64 = 1000;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// An archive written by `vledger export`, or a node's base URL (http://...). Several, of
    /// different regions of one federation: each is verified with the others as its peers
    /// (each adoption of another region checked against that region's archive, and every
    /// decision that reads its records decided again on them as adopted).
    #[arg(required = true, value_name = "SOURCE")]
    sources: Vec<String>,
    /// Print the report as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// The node key (C2SP verifier key) you expect; the archive's own is used otherwise. With
    /// one source only, as are --from-checkpoint, --save-state and --against.
    #[arg(long)]
    node_key: Option<String>,
    /// Continue from a state saved by an earlier `--save-state`: entries up to its checkpoint
    /// are only hashed (and must still give its root), later ones are fully verified.
    #[arg(long, value_name = "STATE_DIR")]
    from_checkpoint: Option<PathBuf>,
    /// After a successful verification, save the last checkpoint and the replayed state in this
    /// directory (replaced once the new save is complete).
    #[arg(long, value_name = "STATE_DIR")]
    save_state: Option<PathBuf>,
    /// Where the replayed state is kept while verifying (it is removed afterwards; default:
    /// the system's temporary directory). It takes about as much disk as the node's state.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Also compare the archive with the checkpoint a running node serves now; a contradiction
    /// is written as equivocation evidence to --evidence-out.
    #[arg(long, value_name = "URL")]
    against: Option<String>,
    /// Where to write equivocation evidence (default: equivocation-evidence.json).
    #[arg(long, default_value = "equivocation-evidence.json")]
    evidence_out: PathBuf,
    /// Signature-checking threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Accept entries after the archive's last checkpoint as an unverified tail: they are
    /// checked and replayed but reported as UNVERIFIED (exit code 3), not as a failure. Without
    /// this flag such entries fail verification (rule `uncovered`).
    #[arg(long)]
    accept_uncovered_tail: bool,
}

/// Exit code when nothing failed but an uncovered tail was accepted.
const EXIT_UNCOVERED_TAIL: i32 = 3;

/// A temporary directory for the replayed state, in `parent` or the system's temporary directory.
pub fn work_dir(parent: Option<&std::path::Path>) -> Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("vledger-replay-");
    match parent {
        Some(parent) => builder
            .tempdir_in(parent)
            .with_context(|| format!("cannot make a directory in {}", parent.display())),
        None => builder
            .tempdir()
            .context("cannot make a temporary directory"),
    }
}

/// Runs `verify`; returns the process exit code: 0 when every source verified, 1 when one
/// failed, 3 when none failed but one has an accepted uncovered tail, 2 on usage or I/O errors.
pub fn run(args: VerifyArgs) -> i32 {
    match run_all(&args) {
        Ok(reports) if reports.iter().all(VerifyReport::passed) => 0,
        Ok(reports) if reports.iter().any(|r| r.failure_count > 0) => 1,
        Ok(reports)
            if reports
                .iter()
                .all(|r| r.passed() || r.passed_with_uncovered_tail()) =>
        {
            EXIT_UNCOVERED_TAIL
        }
        Ok(_) => 1,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

/// One source verified.
struct Verified {
    header: ArchiveHeader,
    report: VerifyReport,
    seconds: f64,
    evidence: Option<PathBuf>,
}

/// Verifies every source, each with the others as its peers, and prints the reports.
fn run_all(args: &VerifyArgs) -> Result<Vec<VerifyReport>> {
    if args.sources.len() > 1 {
        let single = [
            ("--node-key", args.node_key.is_some()),
            ("--from-checkpoint", args.from_checkpoint.is_some()),
            ("--save-state", args.save_state.is_some()),
            ("--against", args.against.is_some()),
        ];
        if let Some((flag, _)) = single.iter().find(|(_, given)| *given) {
            bail!(
                "{flag} applies to one source; {} were given",
                args.sources.len()
            );
        }
        check_one_source_per_region(&args.sources)?;
    }
    let work = work_dir(args.work_dir.as_deref())?;
    let mut verified = Vec::with_capacity(args.sources.len());
    for (subject, source) in args.sources.iter().enumerate() {
        let subject_dir = work.path().join(format!("source-{subject}"));
        std::fs::create_dir(&subject_dir)
            .with_context(|| format!("cannot make {}", subject_dir.display()))?;
        let peers = peer_archives(&args.sources, subject, &subject_dir)?;
        verified.push(verify_source(args, source, &subject_dir, peers)?);
        std::fs::remove_dir_all(&subject_dir).ok();
    }
    if args.json {
        let mut reports: Vec<_> = verified.iter().map(verified_json).collect();
        let json = if reports.len() == 1 {
            reports.remove(0)
        } else {
            serde_json::json!({
                "passed": verified.iter().all(|v| v.report.passed()),
                "regions": reports,
            })
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        for (index, v) in verified.iter().enumerate() {
            if index > 0 {
                println!();
            }
            print_human(&v.header, &v.report, v.seconds);
            if let Some(path) = &v.evidence {
                println!("equivocation evidence written to {}", path.display());
            }
        }
        if verified.len() > 1 {
            print_summary(&verified);
        }
    }
    Ok(verified.into_iter().map(|v| v.report).collect())
}

/// Refuses two sources of one region: a federation's sources are one per region.
pub fn check_one_source_per_region(sources: &[String]) -> Result<()> {
    let mut regions = BTreeMap::new();
    for source in sources {
        let (header, _) = open_source(source)?;
        if let Some(other) = regions.insert(header.region.clone(), source) {
            bail!(
                "{other} and {source} are both logs of region `{}`: give one archive per region",
                header.region
            );
        }
    }
    Ok(())
}

/// Every source but `subject`, as a peer of its verification, each replayed in `work`.
pub fn peer_archives(
    sources: &[String],
    subject: usize,
    work: &std::path::Path,
) -> Result<Vec<PeerArchive>> {
    let mut peers = Vec::new();
    for (index, peer) in sources.iter().enumerate() {
        if index == subject {
            continue;
        }
        let (header, lines) = open_source(peer)?;
        let state = ScratchState::create(&work.join(format!("peer-{index}")))?;
        peers.push(
            PeerArchive::new(&header, lines, state).map_err(|e| anyhow::anyhow!("{peer}: {e}"))?,
        );
    }
    Ok(peers)
}

fn verified_json(v: &Verified) -> serde_json::Value {
    let mut json = v.report.to_json(&v.header);
    json["seconds"] = serde_json::json!(v.seconds);
    json["evidence"] = serde_json::json!(v.evidence.as_ref().map(|p| p.display().to_string()));
    json
}

/// An archive file, or a running node given by its URL, as a source of verification.
pub fn open_source(source: &str) -> Result<(ArchiveHeader, Source)> {
    if source.starts_with("http://") || source.starts_with("https://") {
        return url_source(source);
    }
    let file = std::fs::File::open(source).with_context(|| format!("cannot open {source}"))?;
    let (header, reader) = ArchiveReader::open(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("{source} is not a readable archive"))?;
    let items = reader.map(|line| match line {
        Ok((line, Ok(item))) => Ok(SourceItem::Line { line, item }),
        Ok((line, Err(reason))) => Ok(SourceItem::Malformed { line, reason }),
        Err(e) => Err(e.to_string()),
    });
    Ok((header, Box::new(items)))
}

/// A running node as a source: its entries up to its latest checkpoint, that checkpoint right
/// after the entry that completes its size (as in an archive), and an end line. Entries a node
/// sends beyond what was asked for are passed on, after the checkpoint, so that the verifier
/// names them as not covered.
fn url_source(url: &str) -> Result<(ArchiveHeader, Source)> {
    let client = Client::new(url);
    let info = client.node()?;
    let note = client.checkpoint()?;
    let size = Checkpoint::parse(&SignedNote::parse(&note)?.text)?.size;
    let header = ArchiveHeader::new(&info.origin, &info.region, &info.verifier_key, size, 0);
    let mut next = 0u64;
    let mut sent_entries = 0u64;
    let mut checkpoint = Some(ArchiveLine::Checkpoint { size, note });
    let mut ended = false;
    let mut ready: std::collections::VecDeque<ArchiveLine> = std::collections::VecDeque::new();
    let items = std::iter::from_fn(move || {
        if ready.is_empty() && next < size {
            let end = size.min(next + URL_PAGE);
            match fetch_entries(&client, next, end) {
                Ok(rows) => {
                    next = rows.last().map_or(end, |(i, _)| i + 1);
                    for (index, bytes) in rows {
                        ready.push_back(ArchiveLine::Entry {
                            index,
                            entry: B64.encode(bytes),
                        });
                        sent_entries += 1;
                        if index + 1 == size {
                            ready.extend(checkpoint.take());
                        }
                    }
                }
                Err(e) => return Some(Err(format!("{e:#}"))),
            }
        }
        if ready.is_empty() && !ended {
            ended = true;
            ready.extend(checkpoint.take());
            ready.push_back(ArchiveLine::End {
                entries: sent_entries,
                checkpoints: 1,
                state_digest: None,
            });
        }
        ready
            .pop_front()
            .map(|item| Ok(SourceItem::Line { line: 0, item }))
    });
    Ok((header, Box::new(items)))
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    bar
}

/// Verifies one source with `peers`, the archives of other regions, keeping its replayed state
/// in `work`.
fn verify_source(
    args: &VerifyArgs,
    source_name: &str,
    work: &std::path::Path,
    peers: Vec<PeerArchive>,
) -> Result<Verified> {
    let (header, source) = open_source(source_name)?;
    if let Some(expected) = &args.node_key {
        NoteVerifier::parse(expected).map_err(|e| anyhow::anyhow!("--node-key: {e}"))?;
        if expected != &header.node_key {
            bail!(
                "the archive is signed by {}, not by the expected node key {expected}",
                header.node_key
            );
        }
    }
    let replay_dir = work.join("replay");
    let (start, resume_checkpoint) = match &args.from_checkpoint {
        None => (Start::Fresh(ScratchState::create(&replay_dir)?), None),
        Some(path) => {
            let resume = VerifierState::load(path, &header, &replay_dir)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let checkpoint = resume.checkpoint_note.clone();
            (Start::Resume(resume), Some(checkpoint))
        }
    };
    let served = match &args.against {
        Some(url) => Some(Client::new(url).checkpoint()?),
        None => None,
    };
    let served_size = served
        .as_deref()
        .and_then(|n| SignedNote::parse(n).ok())
        .and_then(|n| Checkpoint::parse(&n.text).ok())
        .map(|c| c.size);
    let options = VerifyOptions {
        threads: args.threads,
        start,
        roots_at: served_size.into_iter().collect::<BTreeSet<_>>(),
        accept_uncovered_tail: args.accept_uncovered_tail,
        peers,
    };
    let bar = progress_bar(header.tree_size);
    let started = std::time::Instant::now();
    let mut report = verify(&header, source, options, &mut |n| bar.set_position(n))
        .map_err(|e| anyhow::anyhow!("cannot read the source: {e}"))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();

    let mut evidence_written = None;
    if let Some(old_note) = &resume_checkpoint {
        if source_name.starts_with("http") {
            check_served_consistency(
                source_name,
                old_note,
                &header,
                &mut report,
                &args.evidence_out,
                &mut evidence_written,
            )?;
        }
    }
    if let (Some(served), Some(size)) = (&served, served_size) {
        compare_served(
            served,
            size,
            &header,
            &mut report,
            &args.evidence_out,
            &mut evidence_written,
            args.against.as_deref().unwrap_or(""),
        )?;
    }
    if report.passed_with_uncovered_tail() && args.save_state.is_some() {
        eprintln!(
            "note: state not saved: entries after the last checkpoint (size {}) are unverified",
            report.covered_size
        );
    }
    if report.passed() {
        if let (Some(path), Some(replayer), Some(checkpoint)) = (
            &args.save_state,
            &mut report.replayer,
            &report.last_good_checkpoint,
        ) {
            let cp_size = Checkpoint::parse(&SignedNote::parse(checkpoint)?.text)?.size;
            if cp_size == replayer.size() {
                VerifierState::save(path, &header, checkpoint, replayer)
                    .map_err(|e| anyhow::anyhow!("cannot save the verifier state: {e}"))?;
            } else {
                eprintln!("note: state not saved: the last checkpoint (size {cp_size}) does not cover all {} entries", replayer.size());
            }
        }
    }
    report.replayer = None;
    Ok(Verified {
        header,
        report,
        seconds: elapsed,
        evidence: evidence_written,
    })
}

fn print_human(header: &ArchiveHeader, report: &VerifyReport, seconds: f64) {
    println!(
        "log {} (region {}), node key {}",
        header.origin, header.region, header.node_key
    );
    println!(
        "{} entries ({} replayed), {} checkpoints verified, tree size {}, root {}, in {:.2} s ({:.0} entries/s)",
        report.entries,
        report.replayed,
        report.checkpoints_verified,
        report.tree_size,
        B64.encode(report.root),
        seconds,
        report.entries as f64 / seconds.max(1e-9)
    );
    if let Some(d) = report.state_digest {
        println!("replayed state digest {}", B64.encode(d));
    }
    print_federation(report);
    if report.passed() {
        println!("VERIFIED: every signature, the chain, every checkpoint and the replay agree");
        return;
    }
    if let (true, Some((from, to))) = (report.passed_with_uncovered_tail(), report.uncovered) {
        let tail = if to - from == 1 {
            format!("entry {from} follows")
        } else {
            format!("entries {from} to {} follow", to - 1)
        };
        println!(
            "NOT VERIFIED: {tail} the last checkpoint (size {from}); no signature of the node \
             covers them. Everything up to that checkpoint verified."
        );
        return;
    }
    println!("FAILED: {} problem(s)", report.failure_count);
    for f in &report.failures {
        println!("  {f}");
    }
    if report.failure_count as usize > report.failures.len() {
        println!(
            "  ... and {} more",
            report.failure_count as usize - report.failures.len()
        );
    }
}

/// What the log did with other regions' records: per region, its adoptions and the decisions
/// that read it.
fn print_federation(report: &VerifyReport) {
    if report.peers.is_empty() {
        return;
    }
    let total = report.cross_region_decisions();
    println!(
        "cross-region decisions: {} replayed on the adopted regions' records, {} folded",
        total.decided, total.folded
    );
    for (region, peer) in &report.peers {
        let adoptions = if peer.archive_given {
            format!(
                "{} adoption(s), {} checked against its archive",
                peer.adoptions, peer.adoptions_checked
            )
        } else {
            format!("{} adoption(s), no archive given", peer.adoptions)
        };
        let size = if peer.adoptions > 0 {
            format!(" (up to size {})", peer.adopted_size)
        } else {
            String::new()
        };
        println!(
            "  region {region}: {adoptions}{size}; decisions reading it: {} replayed, {} folded",
            peer.decisions.decided, peer.decisions.folded
        );
    }
    if total.folded > 0 {
        let regions: Vec<String> = report
            .peers
            .iter()
            .filter(|(_, p)| p.decisions.folded > 0)
            .map(|(region, _)| region.to_string())
            .collect();
        println!(
            "note: {} cross-region decision(s) folded from their recorded events, not decided \
             again: give the archives of region(s) {} as well",
            total.folded,
            regions.join(", ")
        );
    }
    if !report.views_not_kept.is_empty() {
        let regions: Vec<String> = report
            .views_not_kept
            .iter()
            .map(|r| r.to_string())
            .collect();
        println!(
            "note: the node's stored state digest was not compared: it holds the views of \
             region(s) {}, which this replay does not",
            regions.join(", ")
        );
    }
}

/// One line per source: what was verified, and the outcome.
fn print_summary(verified: &[Verified]) {
    println!();
    println!(
        "{:<12} {:>10} {:>18} {:>22} {:>8}  result",
        "region", "entries", "adoptions checked", "cross-region replayed", "folded"
    );
    for v in verified {
        let (adoptions, checked) = v.report.peers.values().fold((0, 0), |(a, c), p| {
            (a + p.adoptions, c + p.adoptions_checked)
        });
        let decisions = v.report.cross_region_decisions();
        let result = if v.report.passed() {
            "VERIFIED"
        } else if v.report.passed_with_uncovered_tail() {
            "NOT VERIFIED"
        } else {
            "FAILED"
        };
        println!(
            "{:<12} {:>10} {:>18} {:>22} {:>8}  {result}",
            v.header.region,
            v.report.entries,
            format!("{checked}/{adoptions}"),
            decisions.decided,
            decisions.folded
        );
    }
}

fn push_failure(report: &mut VerifyReport, size: u64, rule: &str, reason: String) {
    report.failure_count += 1;
    report.failures.push(vledger_offline::verify::Failure {
        index: None,
        checkpoint_size: Some(size),
        line: None,
        rule: rule.into(),
        reason,
    });
}

/// With a URL and a saved state: the node's consistency proof from the saved checkpoint to
/// its latest one must verify.
fn check_served_consistency(
    url: &str,
    old_note: &str,
    header: &ArchiveHeader,
    report: &mut VerifyReport,
    evidence_out: &std::path::Path,
    written: &mut Option<PathBuf>,
) -> Result<()> {
    let old = Checkpoint::parse(&SignedNote::parse(old_note)?.text)?;
    let Some(new_note) = report.last_good_checkpoint.clone() else {
        return Ok(());
    };
    let new = Checkpoint::parse(&SignedNote::parse(&new_note)?.text)?;
    if old.size == 0 || old.size >= new.size {
        return Ok(());
    }
    let proof = fetch_consistency(&Client::new(url), old.size, new.size)?;
    if let Err(e) = verify_consistency(old.size, new.size, &old.root_hash, &new.root_hash, &proof) {
        push_failure(
            report,
            new.size,
            "consistency-proof",
            format!(
                "the node's consistency proof from {} does not verify: {e}",
                old.size
            ),
        );
        if let Some(implied) = implied_old_root(old.size, new.size, &new.root_hash, &proof) {
            let verifier = NoteVerifier::parse(&header.node_key)?;
            let evidence = Evidence::diverging(
                &verifier,
                old_note,
                &new_note,
                &proof,
                implied,
                "vledger verify",
            );
            write_evidence(&evidence, evidence_out, written)?;
        }
    }
    Ok(())
}

/// Compares the node's served checkpoint with the archive.
fn compare_served(
    served: &str,
    size: u64,
    header: &ArchiveHeader,
    report: &mut VerifyReport,
    evidence_out: &std::path::Path,
    written: &mut Option<PathBuf>,
    url: &str,
) -> Result<()> {
    let verifier = NoteVerifier::parse(&header.node_key)?;
    let signed = SignedNote::parse(served)?;
    if signed.verify(std::slice::from_ref(&verifier)).is_err() {
        push_failure(
            report,
            size,
            "served-checkpoint",
            format!("{url} serves a checkpoint not signed by the archive's node key"),
        );
        return Ok(());
    }
    let checkpoint = Checkpoint::parse(&signed.text)?;
    if report.tree_size > size {
        report.failure_count += 1;
        report.failures.push(vledger_offline::verify::Failure {
            index: Some(size),
            checkpoint_size: Some(size),
            line: None,
            rule: "beyond-served".into(),
            reason: format!(
                "the archive holds {} entries; {url} serves a tree of {size}: entries {size} to {} \
                 are not in the log it serves",
                report.tree_size,
                report.tree_size - 1
            ),
        });
    }
    let Some(archive_note) = report.last_good_checkpoint.clone() else {
        return Ok(());
    };
    let archive_cp = Checkpoint::parse(&SignedNote::parse(&archive_note)?.text)?;
    if let Some(root) = report.roots_at.get(&size) {
        if *root != checkpoint.root_hash {
            push_failure(
                report,
                size,
                "equivocation",
                format!(
                    "{url} serves a checkpoint whose root is not the archive's root at size {size}"
                ),
            );
            if archive_cp.size == size {
                write_evidence(
                    &Evidence::same_size(&verifier, &archive_note, served, "vledger verify"),
                    evidence_out,
                    written,
                )?;
            }
        }
    } else if size > archive_cp.size && archive_cp.size > 0 {
        let proof = fetch_consistency(&Client::new(url), archive_cp.size, size)?;
        if let Err(e) = verify_consistency(
            archive_cp.size,
            size,
            &archive_cp.root_hash,
            &checkpoint.root_hash,
            &proof,
        ) {
            push_failure(
                report,
                size,
                "equivocation",
                format!("{url} cannot prove its checkpoint extends the archive: {e}"),
            );
            if let Some(implied) =
                implied_old_root(archive_cp.size, size, &checkpoint.root_hash, &proof)
            {
                let evidence = Evidence::diverging(
                    &verifier,
                    &archive_note,
                    served,
                    &proof,
                    implied,
                    "vledger verify",
                );
                write_evidence(&evidence, evidence_out, written)?;
            }
        }
    }
    Ok(())
}

fn write_evidence(
    evidence: &Evidence,
    path: &std::path::Path,
    written: &mut Option<PathBuf>,
) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(evidence)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    *written = Some(path.to_path_buf());
    Ok(())
}

/// `vledger verify-evidence FILE`: exit 0 when the evidence proves equivocation, 1 when it
/// does not, 2 when it cannot be read.
pub fn verify_evidence(path: &std::path::Path) -> i32 {
    let evidence: Evidence = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {} is not an evidence document: {e}", path.display());
            return 2;
        }
    };
    match evidence.check() {
        Ok(finding) => {
            println!("PROVEN: {finding}");
            0
        }
        Err(e) => {
            println!("NOT PROVEN: {e}");
            1
        }
    }
}
