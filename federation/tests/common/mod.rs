//! Regions of a federation in one process: real nodes on RocksDB in temporary directories.

#![allow(dead_code)]

use std::sync::Arc;

use serde_json::{json, Value};
use vledger_domain::types::RegionId;
use vledger_domain::GenesisBody;
use vledger_federation::Peer;
use vledger_node::node::{Node, NodeConfig};
use vledger_node::writer::{Accepted, SubmitError};
use vledger_tlog::keys::SigningKey;
use vledger_tlog::note::NoteVerifier;
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope, COMMAND_FORMAT_VERSION};

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// One region's node, with its admin.
pub struct Region {
    pub id: RegionId,
    pub node: Arc<Node>,
    pub node_key: SigningKey,
    pub admin: SigningKey,
    pub dir: tempfile::TempDir,
    nonce: std::sync::atomic::AtomicU64,
}

pub fn origin(id: &str) -> String {
    format!("vledger.example/{id}")
}

impl Region {
    /// A founded region `id`; keys are derived from `seed`.
    pub fn found(id: &str, seed: u8) -> Region {
        let dir = tempfile::tempdir().unwrap();
        Self::open_in(id, seed, dir)
    }

    pub fn open_in(id: &str, seed: u8, dir: tempfile::TempDir) -> Region {
        let node_key = key(seed);
        let admin = key(seed.wrapping_add(100));
        let node = Node::open(NodeConfig {
            data_dir: dir.path().to_path_buf(),
            region: RegionId::try_from(id).unwrap(),
            origin: origin(id),
            node_key: node_key.clone(),
            genesis: Some(GenesisBody {
                region_name: format!("region {id}"),
                admin_key: admin.public_key(),
                admin_name: "admin".into(),
                time_zone: "Asia/Shanghai".into(),
            }),
            max_batch_commands: 4096,
        })
        .unwrap();
        Region {
            id: RegionId::try_from(id).unwrap(),
            node,
            node_key,
            admin,
            dir,
            nonce: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Closes the node and opens it again on the same store.
    pub fn restart(self, seed: u8) -> Region {
        let Region { id, node, dir, .. } = self;
        node.shutdown();
        drop(node);
        Self::open_in(id.as_str(), seed, dir)
    }

    /// This region as a peer of another's federation map.
    pub fn as_peer(&self) -> Peer {
        Peer {
            region: self.id.clone(),
            url: String::new(),
            verifier: NoteVerifier::new(origin(self.id.as_str()), self.node_key.public_key())
                .unwrap(),
        }
    }

    pub fn submit(
        &self,
        signer: &SigningKey,
        command_type: &str,
        body: Value,
    ) -> Result<Accepted, SubmitError> {
        self.node
            .submit_and_wait(self.envelope(signer, command_type, body))
    }

    /// A command of this region, signed by `signer`.
    pub fn envelope(
        &self,
        signer: &SigningKey,
        command_type: &str,
        body: Value,
    ) -> VerifiedEnvelope {
        let n = self
            .nonce
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let payload = CommandPayload {
            v: u64::from(COMMAND_FORMAT_VERSION),
            command_type: command_type.into(),
            region: self.id.clone(),
            signer: signer.public_key(),
            // Of one length, so that the entries' bytes are laid out alike from run to run.
            nonce: format!("n-{:010}-{n:08}", rand::random::<u32>()),
            body,
        };
        VerifiedEnvelope::parse_and_verify(&seal(&payload, signer)).unwrap()
    }

    /// Registers a party of this region.
    pub fn register(&self, party: &SigningKey, role: &str) {
        self.submit(
            &self.admin,
            "party.register",
            json!({ "key": party.public_key().to_base64(), "role": role,
                    "home_region": self.id.as_str(), "name": format!("{role} of {}", self.id) }),
        )
        .unwrap();
    }
}

impl Region {
    /// Registers many parties of this region at once: the writer takes them in batches, so
    /// that one checkpoint covers many entries.
    pub fn register_many(&self, parties: &[SigningKey], role: &str) {
        let (tx, rx) = std::sync::mpsc::channel();
        for party in parties {
            let body = json!({ "key": party.public_key().to_base64(), "role": role,
                               "home_region": self.id.as_str(), "name": format!("{role} of {}", self.id) });
            let tx = tx.clone();
            self.node.submit(
                self.envelope(&self.admin, "party.register", body),
                Box::new(move |answer| drop(tx.send(answer))),
            );
        }
        drop(tx);
        for answer in rx {
            answer.unwrap();
        }
    }

    /// Suspends a party of this region.
    pub fn suspend(&self, party: &SigningKey) {
        self.submit(
            &self.admin,
            "party.suspend",
            json!({ "key": party.public_key().to_base64(), "reason": "inspection" }),
        )
        .unwrap();
    }

    /// A second node of this region from a copy of its store, under the same key: what a
    /// region that forks its log runs. The region's node is restarted on its own store.
    /// The node must hold the only reference to its store, so that the store is closed (no
    /// background work of RocksDB's removes a file) while it is copied.
    pub fn fork(self, seed: u8) -> (Region, Region) {
        let Region { id, node, dir, .. } = self;
        node.shutdown();
        assert_eq!(
            Arc::strong_count(&node),
            1,
            "the store of a forked node is in use"
        );
        drop(node);
        let fork_dir = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), fork_dir.path());
        let fork = Region::open_in(id.as_str(), seed, fork_dir);
        (Region::open_in(id.as_str(), seed, dir), fork)
    }
}

/// Copies a directory tree (a stopped node's store).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
