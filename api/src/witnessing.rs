//! The node's side of witnessing: each new checkpoint is sent to the configured witnesses
//! (C2SP tlog-witness `add-checkpoint`, with a consistency proof from the size each witness
//! last cosigned), their cosignatures are checked, and the checkpoint with every valid
//! cosignature is published at `GET /v1/checkpoint/cosigned`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use vledger_node::node::Node;
use vledger_tlog::cosignature::CosignatureVerifier;
use vledger_tlog::note::{Checkpoint, SignedNote};

/// How often the node looks for a new checkpoint to send.
pub const WITNESS_POLL: Duration = Duration::from_millis(500);
/// Longest time a witness may take to answer.
pub const WITNESS_TIMEOUT: Duration = Duration::from_secs(10);

/// One witness: where it listens and the key its cosignatures verify under.
#[derive(Debug, Clone)]
pub struct WitnessTarget {
    /// The witness's submission prefix (`<prefix>/add-checkpoint`).
    pub url: String,
    pub verifier: CosignatureVerifier,
}

impl WitnessTarget {
    /// Parses `<verifier key>@<url>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (vkey, url) = text
            .split_once('@')
            .ok_or_else(|| format!("`{text}`: expected <witness verifier key>@<url>"))?;
        let verifier = CosignatureVerifier::parse(vkey).map_err(|e| e.to_string())?;
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            verifier,
        })
    }
}

/// The latest checkpoint with the cosignatures gathered for it.
#[derive(Default)]
pub struct Cosigned {
    note: RwLock<Option<String>>,
}

impl Cosigned {
    /// The latest cosigned checkpoint, if any witness cosigned one.
    pub fn get(&self) -> Option<String> {
        self.note.read().expect("cosigned lock").clone()
    }
}

/// Starts sending checkpoints to `targets`; returns the published cosigned checkpoint.
pub fn start(node: Arc<Node>, targets: Vec<WitnessTarget>) -> Arc<Cosigned> {
    let cosigned = Arc::new(Cosigned::default());
    let published = Arc::clone(&cosigned);
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(WITNESS_TIMEOUT)
            .build()
            .expect("http client");
        let mut sizes = vec![0u64; targets.len()];
        let mut last_sent: Option<Arc<String>> = None;
        loop {
            let note = node.checkpoint();
            if last_sent.as_deref() != Some(&*note) {
                let mut lines = String::new();
                for (target, size) in targets.iter().zip(sizes.iter_mut()) {
                    match send(&http, &node, target, size, &note).await {
                        Ok(line) => lines.push_str(&line),
                        Err(e) => tracing::warn!(witness = %target.url, "not cosigned: {e}"),
                    }
                }
                if !lines.is_empty() {
                    *published.note.write().expect("cosigned lock") =
                        Some(format!("{note}{lines}"));
                }
                last_sent = Some(note);
            }
            tokio::time::sleep(WITNESS_POLL).await;
        }
    });
    cosigned
}

/// Sends one checkpoint to one witness, learning its size from a 409 once; returns the
/// verified cosignature line.
async fn send(
    http: &reqwest::Client,
    node: &Arc<Node>,
    target: &WitnessTarget,
    witness_size: &mut u64,
    note: &str,
) -> Result<String, String> {
    let signed = SignedNote::parse(note).map_err(|e| e.to_string())?;
    let checkpoint = Checkpoint::parse(&signed.text).map_err(|e| e.to_string())?;
    for _attempt in 0..2 {
        let old = (*witness_size).min(checkpoint.size);
        let proof = if old == 0 || old == checkpoint.size {
            Vec::new()
        } else {
            let node = Arc::clone(node);
            let to = checkpoint.size;
            tokio::task::spawn_blocking(move || node.consistency_proof(old, to))
                .await
                .expect("proof task")
                .map_err(|e| e.to_string())?
        };
        let mut body = format!("old {old}\n");
        for hash in &proof {
            body.push_str(&B64.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let response = http
            .post(format!("{}/add-checkpoint", target.url))
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status == StatusCode::CONFLICT && text.trim().parse::<u64>().is_ok() {
            *witness_size = text.trim().parse().expect("checked");
            continue;
        }
        if !status.is_success() {
            return Err(format!("{status}: {}", text.trim()));
        }
        let with = SignedNote::parse(&format!("{note}{text}")).map_err(|e| e.to_string())?;
        target.verifier.verify(&with).map_err(|e| e.to_string())?;
        *witness_size = checkpoint.size;
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("\u{2014} {} ", target.verifier.name)))
            .ok_or("no cosignature line of this witness")?;
        return Ok(format!("{line}\n"));
    }
    Err("the witness keeps answering a different size".into())
}

/// The latest checkpoint with its witnesses' cosignatures (a C2SP signed note with the node's
/// signature and one cosignature line per witness that cosigned it).
#[utoipa::path(get, path = "/v1/checkpoint/cosigned", tag = "log",
    responses(
        (status = 200, description = "The cosigned checkpoint note", body = String, content_type = "text/plain"),
        (status = 404, description = "No witness is configured, or none has cosigned yet", body = crate::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_cosigned(State(state): State<crate::AppState>) -> Response {
    match state.cosigned.get() {
        Some(note) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response(),
        None => crate::Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no witness has cosigned a checkpoint yet",
        )
        .into_response(),
    }
}

/// Like [`crate::serve_with`], also witnessing every checkpoint with `targets`.
pub async fn serve_witnessed(
    listener: tokio::net::TcpListener,
    node: Arc<Node>,
    targets: Vec<WitnessTarget>,
    limits: crate::ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cosigned = start(Arc::clone(&node), targets);
    let services = crate::NodeServices {
        cosigned,
        ..Default::default()
    };
    crate::serve_app(listener, node, services, limits, shutdown).await
}
