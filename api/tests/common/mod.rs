//! What the HTTP tests share: a real node of region `cq` with a temporary store, serving on a
//! random loopback port, and a client that signs commands for it. Each test file uses part of it.
#![allow(dead_code)]

pub mod market;

use std::sync::Arc;

use serde_json::Value;
use vledger_wire::envelope::{seal, CommandPayload};

use vledger_domain::GenesisBody;
use vledger_node::node::{Node, NodeConfig};
use vledger_tlog::keys::SigningKey;

/// A running node: its base URL, its own key and the directory that holds its store.
pub struct Served {
    pub base: String,
    pub node_key: SigningKey,
    pub dir: tempfile::TempDir,
    pub node: Arc<Node>,
}

/// A new random key.
pub fn fresh_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Founds region `cq` with `admin` as its first admin and serves it until the test ends.
pub async fn serve_node(admin: &SigningKey) -> Served {
    serve_node_with(admin, vledger_api::ConnectionLimits::default()).await
}

/// Like [`serve_node`], holding connections within `limits`.
pub async fn serve_node_with(admin: &SigningKey, limits: vledger_api::ConnectionLimits) -> Served {
    let node_key = fresh_key();
    let (node, dir) = open_node_in("cq", admin, &node_key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(vledger_api::serve_with(
        listener,
        Arc::clone(&node),
        limits,
        std::future::pending(),
    ));
    Served {
        base,
        node_key,
        dir,
        node,
    }
}

/// Founds region `cq` with `admin` as its first admin in a temporary store.
pub fn open_node(admin: &SigningKey) -> (Arc<Node>, tempfile::TempDir) {
    open_node_in("cq", admin, &fresh_key())
}

/// Founds `region`, whose node signs with `node_key`, with `admin` as its first admin in a
/// temporary store.
pub fn open_node_in(
    region: &str,
    admin: &SigningKey,
    node_key: &SigningKey,
) -> (Arc<Node>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(NodeConfig {
        data_dir: dir.path().join("db"),
        region: region.try_into().unwrap(),
        origin: format!("vledger.test/{region}"),
        node_key: node_key.clone(),
        max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
        genesis: Some(GenesisBody {
            region_name: "重庆市科学技术局".into(),
            admin_key: admin.public_key(),
            admin_name: "CQ admin".into(),
            time_zone: "Asia/Shanghai".into(),
        }),
    })
    .unwrap();
    (node, dir)
}

/// A node of region `cq` served over HTTP, and a client that signs commands for it.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    /// The node's own key, the only key of role `node`.
    pub node_key: SigningKey,
    nonce: std::sync::atomic::AtomicU64,
    _dir: tempfile::TempDir,
}

impl Api {
    pub async fn start(admin: &SigningKey) -> Self {
        Self::start_with_node(admin).await.0
    }

    /// [`Api::start`], with the node it serves (for a test that mirrors another region into it).
    pub async fn start_with_node(admin: &SigningKey) -> (Self, Arc<Node>) {
        let served = serve_node(admin).await;
        let node = Arc::clone(&served.node);
        let api = Self {
            base: served.base,
            client: reqwest::Client::new(),
            node_key: served.node_key,
            nonce: Default::default(),
            _dir: served.dir,
        };
        (api, node)
    }

    /// Signs a command for region `cq` and posts it: the status and the JSON answer.
    pub async fn send(&self, signer: &SigningKey, command_type: &str, body: Value) -> (u16, Value) {
        self.send_for("cq", signer, command_type, body).await
    }

    /// Signs a command meant for `region` and posts it to this node.
    pub async fn send_for(
        &self,
        region: &str,
        signer: &SigningKey,
        command_type: &str,
        body: Value,
    ) -> (u16, Value) {
        let nonce = self
            .nonce
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let payload = CommandPayload {
            v: 1,
            command_type: command_type.into(),
            region: region.try_into().unwrap(),
            signer: signer.public_key(),
            nonce: format!("s{nonce}"),
            body,
        };
        let response = self
            .client
            .post(format!("{}/v1/commands", self.base))
            .body(seal(&payload, signer))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn ok(&self, signer: &SigningKey, command_type: &str, body: Value) -> Value {
        let (status, answer) = self.send(signer, command_type, body).await;
        assert_eq!(status, 201, "{command_type}: {answer}");
        answer
    }

    /// Sends a command that must be refused with exactly `status` and the problem `code`.
    pub async fn refused(
        &self,
        signer: &SigningKey,
        command_type: &str,
        body: Value,
        status: u16,
        code: &str,
    ) -> Value {
        let (got, answer) = self.send(signer, command_type, body).await;
        expect_problem(command_type, (got, &answer), status, code);
        answer
    }

    /// The node's tree size: what a refused command must leave as it was.
    pub async fn tree_size(&self) -> u64 {
        self.get("/v1/node").await["tree_size"].as_u64().unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// GETs `path` and returns the status with the JSON body, whatever the status.
    pub async fn get_with_status(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

/// Asserts that an answer is the problem `code` with `status`, as its `type`, `code` and
/// `status` members say too.
pub fn expect_problem(what: &str, (status, answer): (u16, &Value), expected: u16, code: &str) {
    assert_eq!(
        (status, answer["type"].as_str()),
        (
            expected,
            Some(format!("urn:vledger:problem:{code}").as_str())
        ),
        "{what}: {answer}"
    );
    assert_eq!(
        (answer["code"].as_str(), answer["status"].as_u64()),
        (Some(code), Some(u64::from(expected))),
        "{what}: {answer}"
    );
}
