//! A C2SP tlog-witness: cosigns a log's checkpoint only when it is consistent with the latest
//! one it cosigned for that log, keeps that latest view on disk (written atomically: temp
//! file, fsync, rename), refuses rollbacks and forks, and records a fork as self-contained
//! [`Evidence`]. HTTP lives in the `api` crate; this module maps a request body to an
//! [`AddOutcome`].

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use vledger_tlog::cosignature::Cosigner;
use vledger_tlog::evidence::{implied_old_root, Evidence};
use vledger_tlog::merkle::{empty_root, verify_consistency, Hash};
use vledger_tlog::note::{Checkpoint, NoteVerifier, SignedNote};

pub use vledger_domain::limits::MAX_ADD_CHECKPOINT_BYTES;
pub use vledger_domain::limits::MAX_PROOF_LINES;

/// What the witness answers to `add-checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// 200: the cosignature line(s).
    Cosigned(String),
    /// 409 with `text/x.tlog.size`: the old size is not the witness's latest size.
    StaleOldSize(u64),
    /// 409: same size, different root: a fork; the evidence was saved.
    Fork { reason: String, evidence: PathBuf },
    /// 422: the consistency proof does not verify (evidence saved when it shows a fork).
    BadProof {
        reason: String,
        evidence: Option<PathBuf>,
    },
    /// 404: the origin is not a log this witness follows.
    UnknownOrigin(String),
    /// 403: no signature of the log's key verifies.
    Forbidden(String),
    /// 400: the body is malformed.
    Malformed(String),
}

/// The latest cosigned checkpoint of one log, as saved on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogView {
    origin: String,
    size: u64,
    root: String,
    checkpoint: String,
}

/// Why the witness cannot start or save.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a saved log view: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// A witness: its key, the logs it follows, and its saved views.
pub struct Witness {
    cosigner: Cosigner,
    logs: HashMap<String, NoteVerifier>,
    dir: PathBuf,
    views: Mutex<HashMap<String, LogView>>,
}

impl Witness {
    /// Opens the witness's state directory (creating it) and loads the saved views of `logs`.
    pub fn open(
        dir: &Path,
        cosigner: Cosigner,
        logs: Vec<NoteVerifier>,
    ) -> Result<Self, WitnessError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WitnessError::Io { path, source }
        };
        std::fs::create_dir_all(dir.join("logs")).map_err(io(dir))?;
        std::fs::create_dir_all(dir.join("evidence")).map_err(io(dir))?;
        let mut views = HashMap::new();
        for log in &logs {
            let path = view_path(dir, &log.name);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let view: LogView =
                        serde_json::from_slice(&bytes).map_err(|e| WitnessError::Corrupt {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                    views.insert(log.name.clone(), view);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Ok(Self {
            cosigner,
            logs: logs.into_iter().map(|v| (v.name.clone(), v)).collect(),
            dir: dir.to_path_buf(),
            views: Mutex::new(views),
        })
    }

    /// The latest cosigned size of a log (0 if none).
    pub fn latest_size(&self, origin: &str) -> u64 {
        self.views
            .lock()
            .expect("views lock")
            .get(origin)
            .map_or(0, |v| v.size)
    }

    /// Handles one `add-checkpoint` body at `now_s` (seconds since the Unix epoch). Checking the
    /// old size and saving the new view happen under one lock, so no rollback can slip in.
    pub fn add_checkpoint(&self, body: &str, now_s: u64) -> AddOutcome {
        let request = match parse_request(body) {
            Ok(r) => r,
            Err(e) => return AddOutcome::Malformed(e),
        };
        let (old_size, proof, note_text) = request;
        let Ok(note) = SignedNote::parse(note_text) else {
            return AddOutcome::Malformed("the checkpoint is not a signed note".into());
        };
        let Ok(checkpoint) = Checkpoint::parse(&note.text) else {
            return AddOutcome::Malformed("the note is not a checkpoint".into());
        };
        let Some(verifier) = self.logs.get(&checkpoint.origin) else {
            return AddOutcome::UnknownOrigin(checkpoint.origin);
        };
        if let Err(e) = note.verify(std::slice::from_ref(verifier)) {
            return AddOutcome::Forbidden(format!(
                "not signed by the key of `{}`: {e}",
                checkpoint.origin
            ));
        }
        if old_size > checkpoint.size {
            return AddOutcome::Malformed(format!(
                "old size {old_size} is above the checkpoint size {}",
                checkpoint.size
            ));
        }
        let mut views = self.views.lock().expect("views lock");
        let current = views.get(&checkpoint.origin).cloned();
        let current_size = current.as_ref().map_or(0, |v| v.size);
        if old_size != current_size {
            return AddOutcome::StaleOldSize(current_size);
        }
        let current_root = match &current {
            Some(v) => B64
                .decode(&v.root)
                .ok()
                .and_then(|r| r.try_into().ok())
                .unwrap_or([0; 32]),
            None => empty_root(),
        };
        if let Some(view) = &current {
            if checkpoint.size == view.size {
                if checkpoint.root_hash != current_root {
                    let evidence = Evidence::same_size(
                        verifier,
                        &view.checkpoint,
                        note_text,
                        &self.cosigner.name,
                    );
                    return match self.save_evidence(&evidence, &checkpoint) {
                        Ok(path) => AddOutcome::Fork {
                            reason: format!(
                                "a different tree of size {} than the one cosigned before",
                                view.size
                            ),
                            evidence: path,
                        },
                        Err(e) => {
                            AddOutcome::Malformed(format!("fork seen, evidence not saved: {e}"))
                        }
                    };
                }
                if !proof.is_empty() {
                    return AddOutcome::BadProof {
                        reason: "the proof between equal sizes must be empty".into(),
                        evidence: None,
                    };
                }
            } else if let Err(e) = verify_consistency(
                view.size,
                checkpoint.size,
                &current_root,
                &checkpoint.root_hash,
                &proof,
            ) {
                let evidence =
                    implied_old_root(view.size, checkpoint.size, &checkpoint.root_hash, &proof)
                        .filter(|implied| *implied != current_root)
                        .map(|implied| {
                            Evidence::diverging(
                                verifier,
                                &view.checkpoint,
                                note_text,
                                &proof,
                                implied,
                                &self.cosigner.name,
                            )
                        })
                        .and_then(|ev| self.save_evidence(&ev, &checkpoint).ok());
                return AddOutcome::BadProof {
                    reason: format!(
                        "the consistency proof from {} to {} does not verify: {e}",
                        view.size, checkpoint.size
                    ),
                    evidence,
                };
            }
        } else if !proof.is_empty() {
            return AddOutcome::BadProof {
                reason: "the proof from size 0 must be empty".into(),
                evidence: None,
            };
        }
        let view = LogView {
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: B64.encode(checkpoint.root_hash),
            checkpoint: note_text.to_string(),
        };
        if let Err(e) = write_atomically(
            &view_path(&self.dir, &checkpoint.origin),
            &serde_json::to_vec_pretty(&view).expect("view serializes"),
        ) {
            return AddOutcome::Malformed(format!("cannot save the view: {e}"));
        }
        views.insert(checkpoint.origin.clone(), view);
        AddOutcome::Cosigned(self.cosigner.cosign(&note.text, now_s))
    }

    fn save_evidence(
        &self,
        evidence: &Evidence,
        checkpoint: &Checkpoint,
    ) -> std::io::Result<PathBuf> {
        let path = self.dir.join("evidence").join(format!(
            "{}-{}-{}.json",
            origin_file_stem(&checkpoint.origin),
            checkpoint.size,
            hex::encode(
                &Sha256::digest(serde_json::to_vec(evidence).expect("evidence serializes"))[..4]
            )
        ));
        write_atomically(
            &path,
            &serde_json::to_vec_pretty(evidence).expect("evidence serializes"),
        )?;
        Ok(path)
    }
}

/// Splits a body into old size, proof hashes and the checkpoint note.
fn parse_request(body: &str) -> Result<(u64, Vec<Hash>, &str), String> {
    if body.len() > MAX_ADD_CHECKPOINT_BYTES {
        return Err(format!("the body is over {MAX_ADD_CHECKPOINT_BYTES} bytes"));
    }
    let (first, mut rest) = body
        .split_once('\n')
        .ok_or("the body has no old size line")?;
    let size = first
        .strip_prefix("old ")
        .ok_or("the first line must be `old <size>`")?;
    if size.is_empty()
        || !size.bytes().all(|b| b.is_ascii_digit())
        || (size.len() > 1 && size.starts_with('0'))
    {
        return Err(format!("bad old size `{size}`"));
    }
    let old_size: u64 = size.parse().map_err(|_| format!("bad old size `{size}`"))?;
    let mut proof = Vec::new();
    loop {
        let (line, after) = rest
            .split_once('\n')
            .ok_or("no empty line before the checkpoint")?;
        rest = after;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF_LINES {
            return Err(format!("more than {MAX_PROOF_LINES} proof lines"));
        }
        let hash: Hash = B64
            .decode(line)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| format!("proof line `{line}` is not a base64 hash"))?;
        proof.push(hash);
    }
    Ok((old_size, proof, rest))
}

fn origin_file_stem(origin: &str) -> String {
    hex::encode(&Sha256::digest(origin.as_bytes())[..8])
}

fn view_path(dir: &Path, origin: &str) -> PathBuf {
    dir.join("logs")
        .join(format!("{}.json", origin_file_stem(origin)))
}

/// Writes a file so that a crash leaves the old or the new content, never a mix: a temporary
/// file is written and synced, renamed over the target, and the directory is synced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
