//! The node's side of the federation: a mirror per region of the federation map, each on its own
//! thread (see `vledger_federation::mirror`), and `GET /v1/federation`, which shows the map with
//! what this node adopted of each region and how each mirror stands.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::Json;
use vledger_domain::federation::load_adopted;
use vledger_federation::mirror::{self, Mirror, MirrorStatus, Peer};
use vledger_federation::HttpSource;
use vledger_node::node::Node;
use vledger_node::writer::wall_clock_ms;
use vledger_wire::http::{AdoptedView, FederationView, MirrorView, PeerView};

use crate::problem::read_failure;
use crate::{AppState, Problem};

/// The other regions of this node's federation, and their mirrors.
#[derive(Default)]
pub struct Federation {
    pub peers: Vec<(Peer, Arc<RwLock<MirrorStatus>>)>,
    stop: Arc<AtomicBool>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Federation {
    /// Starts a mirror of each of `peers` into `node`, keeping equivocation evidence in
    /// `evidence_dir`.
    pub fn start(node: Arc<Node>, peers: Vec<Peer>, evidence_dir: PathBuf) -> Arc<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut statuses = Vec::new();
        let mut threads = Vec::new();
        for peer in peers {
            let source = match HttpSource::new(&peer.url) {
                Ok(source) => source,
                Err(e) => {
                    tracing::error!(region = %peer.region, error = %e, "no HTTP client for the region's mirror");
                    continue;
                }
            };
            let mirror = Mirror::new(node.clone(), peer.clone(), Some(evidence_dir.clone()));
            statuses.push((peer, mirror.status()));
            threads.push(mirror::spawn(mirror, Box::new(source), stop.clone()));
        }
        Arc::new(Self {
            peers: statuses,
            stop,
            threads: std::sync::Mutex::new(threads),
        })
    }

    /// Stops the mirrors and waits for them.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.lock().expect("mirror threads lock").drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The federation map as this node sees it: every other region, what this node adopted of it
/// (size, root, the checkpoint as signed, the entry that adopted it) and its mirror's state and
/// lag. Other nodes compare what this one adopted with what they saw.
#[utoipa::path(get, path = "/v1/federation", tag = "federation",
    responses(
        (status = 200, description = "The federation map with this node's adoptions", body = FederationView),
        (status = 503, description = "The store could not be read", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_federation(
    State(state): State<AppState>,
) -> Result<Json<FederationView>, Problem> {
    let node = state.node.clone();
    let federation = state.federation.clone();
    let view = tokio::task::spawn_blocking(move || federation_view(&node, &federation))
        .await
        .expect("federation view task")?;
    Ok(Json(view))
}

fn federation_view(node: &Node, federation: &Federation) -> Result<FederationView, Problem> {
    let now = wall_clock_ms();
    let mut peers = Vec::with_capacity(federation.peers.len());
    for (peer, status) in &federation.peers {
        let status = status.read().expect("mirror status lock").clone();
        let adopted = match load_adopted(&node.state(), &peer.region).map_err(read_failure)? {
            None => None,
            Some(adopted) => Some(AdoptedView {
                checkpoint: node
                    .adopted_checkpoint(&peer.region, adopted.size)
                    .map_err(|e| read_failure(vledger_domain::StateError::Store(e.to_string())))?
                    .unwrap_or_default(),
                size: adopted.size,
                root_hash: adopted.root_hash,
                adopted_at: adopted.adopted_at,
                adopted_time_ms: adopted.adopted_time_ms,
            }),
        };
        let state = if status.equivocation.is_some() {
            "halted"
        } else if status.last_error.is_some() {
            "failing"
        } else {
            "following"
        };
        peers.push(PeerView {
            region: peer.region.to_string(),
            url: peer.url.clone(),
            verifier_key: peer.verifier.to_verifier_key(),
            adopted,
            mirror: MirrorView {
                state: state.into(),
                latest_seen_size: status.latest_seen_size,
                lag_entries: status.lag_entries(),
                lag_seconds: status.lag_seconds(now),
                last_contact_ms: status.last_contact_ms,
                last_error: status.last_error.clone(),
                folded_entries: status.folded_entries,
                equivocation: status
                    .equivocation
                    .as_ref()
                    .map(|e| serde_json::to_value(e).expect("evidence serializes")),
            },
        });
    }
    Ok(FederationView {
        region: node.region().to_string(),
        origin: node.origin().to_string(),
        verifier_key: node.verifier_key(),
        tree_size: node.tree_size(),
        peers,
    })
}
